import { createLogger } from '@scaleot/core';
import { validateJobPayload, type AnyJobPayload, type JobContext, type JobHandler, type JobHandlers, type JobKind } from '@scaleot/queue';
import { ClusterError } from './ClusterError.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';

/** Runs jobs in this process with the workers' handlers (no Redis): validated like the queue does. */
export class LocalJobRunner implements JobRunner {
  readonly mode = 'in-process' as const;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly handlers: JobHandlers) {}

  /** The jobs of each group not started yet (cancelGroup marks them). */
  private readonly queued = new Map<string, Set<{ cancelled: boolean }>>();

  run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions = {}): Promise<T> {
    const group = options.group;
    const ticket = { cancelled: false };
    if (group) {
      if (!this.queued.has(group)) this.queued.set(group, new Set());
      this.queued.get(group)!.add(ticket);
    }
    const started = () => {
      this.queued.get(group ?? '')?.delete(ticket);
      if (group && this.queued.get(group)?.size === 0) this.queued.delete(group);
    };
    // One at a time, like a single worker with concurrency 1 (one tfjs engine, one wasm heap).
    const next = this.tail.then(() => {
      started();
      if (ticket.cancelled) throw new ClusterError('CANCELLED', `${kind} job of ${group} was cancelled`, { where: group });
      return this.runNow<T>(kind, payload, options);
    });
    this.tail = next.catch(() => undefined);
    return next;
  }

  /**
   * The group's jobs not started yet are skipped; the running one finishes (in-process compute cannot be
   * interrupted). Jobs the group runs later (a failed request plugged in again) run as usual.
   */
  async cancelGroup(group: string): Promise<{ removed: number; signalled: number }> {
    const tickets = this.queued.get(group) ?? new Set();
    for (const ticket of tickets) ticket.cancelled = true;
    this.queued.delete(group);
    return { removed: tickets.size, signalled: 0 };
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
