import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createLogger, type Logger } from '@scaleot/core';
import type { RedisConnection } from '@scaleot/queue';
import { Redis } from 'ioredis';

/** What a live worker says about itself: enough for the coordinator to plan pipeline stages. */
export interface WorkerRecord {
  /** Unique per process (host, pid and a random suffix). */
  id: string;
  /** Memory this worker may use, bytes: `workerMemoryBytes()` (SCALEOT_WORKER_MEMORY_BYTES, else the pod's limit). */
  memoryBytes: number;
  /** Queues it consumes (SCALEOT_QUEUE_NAMES). */
  queues: string[];
  /** Worker group (SCALEOT_WORKER_GROUP). */
  group: string;
  /** Address its pipeline-stage sockets are reached at (SCALEOT_ADVERTISE_HOST). */
  host: string;
  pid: number;
  /** When the worker last refreshed its entry (its own clock, ms since the epoch). */
  seenAt: number;
}

export interface WorkerRegistryOptions {
  /** Redis URL or ioredis options (the queue's). */
  connection: RedisConnection;
  /** Key prefix (the queue prefix, SCALEOT_QUEUE_PREFIX): entries live under `<prefix>:worker-registry`. */
  prefix: string;
  /** How long an entry outlives its last refresh, ms; a registered worker refreshes every third of it. Default 30 000. */
  ttlMs?: number;
  logger?: Logger;
}

/**
 * The live workers of an install and their memory budgets, in Redis under the queue prefix. Each worker
 * `register`s itself and refreshes its entry (a key with a TTL, indexed by one set) until `close`; a
 * worker that dies without closing drops out once its TTL runs out (Redis' clock, so the hosts' clocks
 * do not matter). The coordinator `list`s the entries to plan stage 1 from the budgets of the workers
 * that are actually there.
 */
export class WorkerRegistry {
  private readonly client: Redis;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private own?: Omit<WorkerRecord, 'seenAt'>;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: WorkerRegistryOptions) {
    const settings = { maxRetriesPerRequest: 2, lazyConnect: false };
    this.client = typeof options.connection === 'string' ? new Redis(options.connection, settings) : new Redis({ ...options.connection, ...settings });
    this.ttlMs = options.ttlMs ?? 30_000;
    this.log = options.logger ?? createLogger('cluster.registry');
  }

  /** A fresh worker id: host, pid and a random suffix (a restarted pod with the same pid gets a new one). */
  static workerId(): string {
    return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** Writes this worker's entry now and keeps refreshing it until `close()`. */
  async register(record: Omit<WorkerRecord, 'seenAt'>): Promise<void> {
    this.own = record;
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((error: unknown) => this.log.warn({ err: (error as Error).message, worker: record.id }, 'worker registry: refresh failed (retrying)'));
    }, Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** The live workers, oldest id first; with `queue`, only those consuming that queue. Expired entries are dropped from the index. */
  async list(filter: { queue?: string } = {}): Promise<WorkerRecord[]> {
    const ids = await this.client.smembers(this.indexKey);
    if (ids.length === 0) return [];
    const values = await this.client.mget(ids.map((id) => this.entryKey(id)));
    const gone = ids.filter((_, i) => values[i] === null);
    // A worker whose entry lapsed and comes back adds itself to the index again on its next refresh.
    if (gone.length > 0) await this.client.srem(this.indexKey, ...gone);
    const records: WorkerRecord[] = [];
    for (const value of values) {
      if (value === null) continue;
      try {
        records.push(JSON.parse(value) as WorkerRecord);
      } catch {
        this.log.warn({ value: value.slice(0, 200) }, 'worker registry: an entry is not JSON (skipped)');
      }
    }
    return records.filter((r) => filter.queue === undefined || r.queues.includes(filter.queue)).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Stops refreshing, removes this worker's entry (if it registered) and closes the connection. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.own) {
      const { id } = this.own;
      this.own = undefined;
      await this.client.multi().del(this.entryKey(id)).srem(this.indexKey, id).exec().catch(() => undefined);
    }
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private get indexKey(): string {
    return `${this.options.prefix}:worker-registry`;
  }

  private entryKey(id: string): string {
    return `${this.indexKey}:${id}`;
  }

  private async refresh(): Promise<void> {
    const own = this.own;
    if (!own) return;
    const entry: WorkerRecord = { ...own, seenAt: Date.now() };
    await this.client.multi().set(this.entryKey(own.id), JSON.stringify(entry), 'PX', this.ttlMs).sadd(this.indexKey, own.id).exec();
  }
}
