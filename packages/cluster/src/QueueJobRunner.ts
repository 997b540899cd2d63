import { JobQueue, JobRouter, type AnyJobPayload, type JobKind, type RedisConnection } from '@scaleot/queue';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { ClusterError } from './ClusterError.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';

/** States of a job no worker has taken yet. */
const QUEUED_STATES: string[] = ['waiting', 'delayed', 'prioritized', 'waiting-children'];

/**
 * Runs jobs on the cluster: enqueue on the queue the job kind is routed to (one queue, or a
 * {@link JobRouter}), follow progress through that queue's QueueEvents, wait for the result.
 */
export class QueueJobRunner implements JobRunner {
  readonly mode = 'queue' as const;
  private readonly events = new Map<string, QueueEvents>();
  private readonly progress = new Map<string, (value: unknown) => void>();
  private readonly router?: JobRouter;
  /** The jobs of each group (a request's), with their queue and the reject of their waiter (cancellation). */
  private readonly groups = new Map<string, Map<string, { queue: JobQueue; id: string; reject: (error: Error) => void }>>();

  constructor(
    readonly queue: JobQueue | JobRouter,
    private readonly connection: RedisConnection,
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
    const group = options.group;
    let cancel: (error: Error) => void = () => undefined;
    const cancelled = new Promise<never>((_, reject) => (cancel = reject));
    cancelled.catch(() => undefined);
    if (group) {
      if (!this.groups.has(group)) this.groups.set(group, new Map());
      this.groups.get(group)!.set(key, { queue, id, reject: cancel });
    }
    try {
      return (await Promise.race([job.waitUntilFinished(events), cancelled])) as T;
    } catch (error) {
      if (error instanceof ClusterError && error.code === 'CANCELLED') throw error;
      throw new ClusterError('JOB_FAILED', `${kind} job ${id} on queue ${queue.name} failed: ${error instanceof Error ? error.message : String(error)}`, { where: `job ${id}`, cause: error, unrecoverable: false });
    } finally {
      this.progress.delete(key);
      this.groups.get(group ?? '')?.delete(key);
      if (group && this.groups.get(group)?.size === 0) this.groups.delete(group);
    }
  }

  async cancelGroup(group: string): Promise<{ removed: number; signalled: number }> {
    const jobs = this.groups.get(group);
    let removed = 0;
    let signalled = 0;
    for (const { queue, id, reject } of jobs?.values() ?? []) {
      const job = await queue.queue.getJob(id);
      const state = job ? await job.getState() : 'unknown';
      // A worker may take a queued job between getState and remove (remove then fails on its lock):
      // that job is signalled like a running one.
      const queued = QUEUED_STATES.includes(state);
      const gone = job && queued ? await job.remove().then(() => true, () => false) : false;
      if (gone) removed++;
      else if (job && (queued || state === 'active')) {
        // The worker holds the lock; the flag tells it (and any retry) that nobody waits for the result.
        await queue.signalCancel(id).catch(() => undefined);
        signalled++;
      }
      reject(new ClusterError('CANCELLED', `job ${id} of ${group} was cancelled`, { where: group }));
    }
    this.groups.delete(group);
    return { removed, signalled };
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.close()));
  }
}

