import type { Redis } from 'ioredis';
import { assertRateLimit, type RateLimit } from './tenants.js';

// Sliding-window log: one sorted set of start times per tenant, trimmed to the window on every call.
// Atomic across workers (one script) and timed by the Redis clock, so worker clock skew does not matter.
// Returns 0 when a start is granted (and records it), else the ms until the oldest start leaves the window.
const SCRIPT = `
local key = KEYS[1]
local max = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
if redis.call('ZCARD', key) < max then
  redis.call('ZADD', key, now, ARGV[3] .. ':' .. now)
  redis.call('PEXPIRE', key, duration)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + duration - now)
`;

type LimiterRedis = Redis & { scaleotTenantSlot(key: string, max: number, durationMs: number, member: string): Promise<number> };

/**
 * Per-tenant start-rate limit shared by every worker of a queue. BullMQ's own limiter is one limit for
 * the whole queue, and its group limits are a BullMQ Pro feature, so tenants get their own window in
 * Redis; a job over its tenant's limit goes back to `delayed` until its slot (without using an attempt)
 * while other tenants' jobs keep running.
 */
export class TenantRateLimiter {
  private readonly redis: LimiterRedis;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
  ) {
    redis.defineCommand('scaleotTenantSlot', { numberOfKeys: 1, lua: SCRIPT });
    this.redis = redis as LimiterRedis;
  }

  /** Claims a start for `tenant`: 0 if granted, else how many ms to wait before asking again. */
  async acquire(tenant: string, limit: RateLimit, claimant: string): Promise<number> {
    assertRateLimit(limit, `rate limit of tenant ${tenant}`);
    return Number(await this.redis.scaleotTenantSlot(`${this.keyPrefix}:${tenant}`, limit.max, limit.durationMs, claimant));
  }
}
