import { createLogger } from '@scaleot/core';
import { validateJobPayload, type AnyJobPayload, type JobContext, type JobHandler, type JobHandlers, type JobKind } from '@scaleot/queue';
import { ClusterError } from './ClusterError.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';

/** Runs jobs in this process with the workers' handlers (no Redis): validated like the queue does. */
export class LocalJobRunner implements JobRunner {
  readonly mode = 'in-process' as const;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly handlers: JobHandlers) {}

  private readonly cancelled = new Set<string>();

  run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions = {}): Promise<T> {
    // One at a time, like a single worker with concurrency 1 (one tfjs engine, one wasm heap).
    const next = this.tail.then(() => {
      if (options.group && this.cancelled.has(options.group)) throw new ClusterError('CANCELLED', `${kind} job of ${options.group} was cancelled`, { where: options.group });
      return this.runNow<T>(kind, payload, options);
    });
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Queued jobs of the group are skipped; the running one finishes (in-process compute cannot be interrupted). */
  async cancelGroup(group: string): Promise<{ removed: number; signalled: number }> {
    this.cancelled.add(group);
    return { removed: 0, signalled: 0 };
  }

  private async runNow<T>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions): Promise<T> {
    const handler = this.handlers[kind] as JobHandler<JobKind> | undefined;
    if (!handler) throw new ClusterError('NO_HANDLER', `no in-process handler for "${kind}"`, { where: kind });
    const valid = validateJobPayload(kind, payload);
    const context = {
      kind,
      tenant: (valid as { tenant?: string }).tenant ?? 'owner',
      attempt: 1,
      progress: async (value: number | object) => options.onProgress?.(value),
      childrenValues: async () => ({}),
      log: createLogger(`local.${kind}`),
    } as unknown as JobContext<JobKind>;
    return (await handler(valid, context)) as T;
  }

  async close(): Promise<void> {
    await this.tail;
  }
}
