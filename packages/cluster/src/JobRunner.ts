import type { AnyJobPayload, JobKind } from '@scaleot/queue';

export interface RunJobOptions {
  /** Progress the job reports (tuning steps, ...). */
  onProgress?: (value: unknown) => void;
}

/**
 * Runs one job of the pipeline and returns its result: through the queue (a worker process runs it) or
 * in this process with the same handlers (when Redis is unreachable). The coordinator's job graph is
 * written against this, so both modes run the same steps.
 */
export interface JobRunner {
  readonly mode: 'queue' | 'in-process';
  run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options?: RunJobOptions): Promise<T>;
  close(): Promise<void>;
}
