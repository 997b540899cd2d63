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

  constructor(
    readonly queue: JobQueue,
    connection: RedisConnection,
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
    try {
      return (await job.waitUntilFinished(this.events)) as T;
    } catch (error) {
      throw new ClusterError('JOB_FAILED', `${kind} job ${id} failed: ${error instanceof Error ? error.message : String(error)}`, { where: `job ${id}`, cause: error, unrecoverable: false });
    } finally {
      this.progress.delete(id);
    }
  }

  async close(): Promise<void> {
    await this.events.close();
  }
}
