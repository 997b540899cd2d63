import type { Job } from 'bullmq';
import { JobQueue, type AddJobOptions, type JobQueueOptions } from './JobQueue.js';
import type { JobKind, JobPayload } from './jobKinds.js';
import { queueForKind, routedQueues, type JobRoutes } from './jobRoutes.js';

/**
 * Producer side over several queues: each job kind goes to the queue its route names (one
 * {@link JobQueue} per distinct queue, all with the same connection, prefix and policies).
 */
export class JobRouter {
  readonly routes: JobRoutes;
  private readonly byName = new Map<string, JobQueue>();

  constructor(routes: JobRoutes, options: Omit<JobQueueOptions, 'name'> = {}) {
    this.routes = routes;
    for (const name of routedQueues(routes)) this.byName.set(name, new JobQueue({ ...options, name }));
  }

  /** The queue of a job kind. */
  queueFor(kind: JobKind): JobQueue {
    return this.byName.get(queueForKind(this.routes, kind))!;
  }

  /** Every routed queue, the default queue first. */
  get queues(): JobQueue[] {
    return [...this.byName.values()];
  }

  add<K extends JobKind>(kind: K, payload: JobPayload<K>, options: AddJobOptions = {}): Promise<Job<JobPayload<K>>> {
    return this.queueFor(kind).add(kind, payload, options);
  }

  async close(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.close()));
  }
}
