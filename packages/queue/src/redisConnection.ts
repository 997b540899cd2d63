import { Redis, type RedisOptions } from 'ioredis';

/** A Redis URL (`redis://host:port/db`) or ioredis options. */
export type RedisConnection = string | RedisOptions;

/** `SCALEOT_REDIS_URL`, else the local Redis. */
export function defaultRedisConnection(): RedisConnection {
  return process.env.SCALEOT_REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/**
 * A dedicated ioredis client. Workers need `maxRetriesPerRequest: null` (BullMQ's blocking commands
 * must wait out Redis restarts instead of failing after 20 retries); producers keep ioredis' default so
 * an `add` during an outage fails instead of hanging.
 */
export function openRedis(connection: RedisConnection, purpose: 'producer' | 'worker', name: string): Redis {
  const overrides: RedisOptions = { connectionName: name, ...(purpose === 'worker' ? { maxRetriesPerRequest: null } : {}) };
  return typeof connection === 'string' ? new Redis(connection, overrides) : new Redis({ ...connection, ...overrides });
}
