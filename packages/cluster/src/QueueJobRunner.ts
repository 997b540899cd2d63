import { JobQueue, type AnyJobPayload, type JobKind, type RedisConnection } from '@scaleot/queue';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { ClusterError } from './ClusterError.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';

/** Runs jobs on the cluster: enqueue, follow progress through QueueEvents, wait for the result. */
export class QueueJobRunner implements JobRunner {
  readonly mode = 'queue' as const;
  private readonly events: QueueEvents;
  private readonly progress = new Map<string, (value: unknown) => void>();
  /** Job ids of each group with the reject of their waiter (cancellation). */
  private readonly groups = new Map<string, Map<string, (error: Error) => void>>();

  constructor(
    readonly queue: JobQueue,
    private readonly connection: RedisConnection,
  ) {
    const client = typeof connection === 'string' ? new Redis(connection, { maxRetriesPerRequest: null }) : new Redis({ ...connection, maxRetriesPerRequest: null });
    this.events = new QueueEvents(queue.name, { connection: client, prefix: queue.prefix });
    this.events.on('progress', ({ jobId, data }) => this.progress.get(jobId)?.(data));
  }

  async run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions = {}): Promise<T> {
    await this.events.waitUntilReady();
    const job = await this.queue.add(kind, payload as never);
    const id = String(job.id);
    if (options.onProgress) this.progress.set(id, options.onProgress);
    const group = options.group;
    let cancel: (error: Error) => void = () => undefined;
    const cancelled = new Promise<never>((_, reject) => (cancel = reject));
    cancelled.catch(() => undefined);
    if (group) {
      if (!this.groups.has(group)) this.groups.set(group, new Map());
      this.groups.get(group)!.set(id, cancel);
    }
    try {
      return (await Promise.race([job.waitUntilFinished(this.events), cancelled])) as T;
    } catch (error) {
      if (error instanceof ClusterError && error.code === 'CANCELLED') throw error;
      throw new ClusterError('JOB_FAILED', `${kind} job ${id} failed: ${error instanceof Error ? error.message : String(error)}`, { where: `job ${id}`, cause: error, unrecoverable: false });
    } finally {
      this.progress.delete(id);
      this.groups.get(group ?? '')?.delete(id);
      if (group && this.groups.get(group)?.size === 0) this.groups.delete(group);
    }
  }

  async cancelGroup(group: string): Promise<{ removed: number; signalled: number }> {
    const jobs = this.groups.get(group);
    let removed = 0;
    let signalled = 0;
    let signals: Redis | undefined;
    for (const [id, reject] of jobs ?? []) {
      const job = await this.queue.queue.getJob(id);
      const state = job ? await job.getState() : 'unknown';
      if (job && ['waiting', 'delayed', 'prioritized', 'waiting-children'].includes(state)) {
        await job.remove().then(() => removed++, () => undefined);
      } else if (state === 'active') {
        // The worker holds the lock; the flag tells it (and any retry) that nobody waits for the result.
        signals ??= typeof this.connection === 'string' ? new Redis(this.connection, { maxRetriesPerRequest: 1 }) : new Redis({ ...this.connection, maxRetriesPerRequest: 1 });
        await signals.set(`${this.queue.prefix}:${this.queue.name}:cancelled:${id}`, '1', 'EX', 24 * 3600).catch(() => undefined);
        signalled++;
      }
      reject(new ClusterError('CANCELLED', `job ${id} of ${group} was cancelled`, { where: group }));
    }
    this.groups.delete(group);
    await signals?.quit().catch(() => undefined);
    return { removed, signalled };
  }

  async close(): Promise<void> {
    await this.events.close();
  }
}
