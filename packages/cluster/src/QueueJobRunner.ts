import { JobQueue, JobRouter, type AnyJobPayload, type JobKind, type RedisConnection } from '@scaleot/queue';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { ClusterError } from './ClusterError.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';

/**
 * Runs jobs on the cluster: enqueue on the queue the job kind is routed to (one queue, or a
 * {@link JobRouter}), follow progress through that queue's QueueEvents, wait for the result.
 */
export class QueueJobRunner implements JobRunner {
  readonly mode = 'queue' as const;
  private readonly events = new Map<string, QueueEvents>();
  private readonly progress = new Map<string, (value: unknown) => void>();
  private readonly router?: JobRouter;

  constructor(
    readonly queue: JobQueue | JobRouter,
    connection: RedisConnection,
  ) {
    const queues = queue instanceof JobRouter ? queue.queues : [queue];
    if (queue instanceof JobRouter) this.router = queue;
    for (const q of queues) {
      const client = typeof connection === 'string' ? new Redis(connection, { maxRetriesPerRequest: null }) : new Redis({ ...connection, maxRetriesPerRequest: null });
      const events = new QueueEvents(q.name, { connection: client, prefix: q.prefix });
      events.on('progress', ({ jobId, data }) => this.progress.get(`${q.name}:${jobId}`)?.(data));
      this.events.set(q.name, events);
    }
  }

  async run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions = {}): Promise<T> {
    const queue = this.router ? this.router.queueFor(kind) : (this.queue as JobQueue);
    const events = this.events.get(queue.name)!;
    await events.waitUntilReady();
    const job = await queue.add(kind, payload as never);
    const id = String(job.id);
    const key = `${queue.name}:${id}`;
    if (options.onProgress) this.progress.set(key, options.onProgress);
    try {
      return (await job.waitUntilFinished(events)) as T;
    } catch (error) {
      throw new ClusterError('JOB_FAILED', `${kind} job ${id} on queue ${queue.name} failed: ${error instanceof Error ? error.message : String(error)}`, { where: `job ${id}`, cause: error, unrecoverable: false });
    } finally {
      this.progress.delete(key);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.close()));
  }
}

