import type { AnyJobPayload, JobKind } from '@scaleot/queue';

export interface RunJobOptions {
  /** Progress the job reports (tuning steps, ...). */
  onProgress?: (value: unknown) => void;
  /** Groups the job with others (a tuning request's id) so `cancelGroup` can find it. Default none. */
  group?: string;
}

/**
 * Runs one job of the pipeline and returns its result: through the queue (a worker process runs it) or
 * in this process with the same handlers (when Redis is unreachable). The coordinator's job graph is
 * written against this, so both modes run the same steps.
 */
export interface JobRunner {
  readonly mode: 'queue' | 'in-process';
  run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options?: RunJobOptions): Promise<T>;
  /**
   * Cancels the group's jobs: queued ones are removed, running ones are signalled (their waiters reject
   * with CANCELLED at once; stopping compute mid-step is the executor's part). Returns how many of each.
   */
  cancelGroup(group: string): Promise<{ removed: number; signalled: number }>;
  close(): Promise<void>;
}
