import { createLogger, type Logger } from '@scaleot/core';
import type { ComputeTask } from './computeProtocol.js';
import { ComputeThread } from './ComputeThread.js';
import { computeThreads } from './cpuBudget.js';
import { ModelError } from './ModelError.js';
import type { BackendChoice } from './useBackend.js';

export { ComputeError } from './ComputeError.js';

export interface ComputeExecutorOptions {
  /** Backend the compute threads select (default: SCALEOT_BACKEND, else wasm). */
  backend?: BackendChoice;
  /** Tasks that run at once, one compute thread each (a worker's job concurrency). Default 1. */
  concurrency?: number;
  /** Cores the executor's tasks share for their own data-parallel replicas, split evenly between the threads (default: `computeThreads()`). */
  threadBudget?: number;
  logger?: Logger;
}

export interface ComputeRunOptions {
  /** Aborting terminates the thread running the task at once; `run` rejects with code ABORTED. */
  signal?: AbortSignal;
  onProgress?: (value: unknown) => void;
}

/**
 * Runs compute (training loops, evaluation, stage-1 steps) in worker threads so the process' event loop
 * keeps serving: job locks renew, health checks answer, signals are handled. `concurrency` threads, one
 * task each at a time (a tfjs engine and wasm heap per thread); threads live across tasks, so
 * module-level caches in task modules (a loaded base model) are reused. Aborting a task terminates its
 * thread (compute stops within milliseconds, not at the next step boundary); the next task starts a
 * fresh one. Tasks beyond `concurrency` wait in order.
 */
export class ComputeExecutor {
  private readonly threads: ComputeThread[];
  private readonly idle: ComputeThread[];
  private readonly waiting: ((thread: ComputeThread) => void)[] = [];
  private closed = false;
  /** Tasks holding a thread (starting, running or finishing). */
  private active = 0;
  /** Cores each task may use for its own replicas. */
  readonly threadBudget: number;

  constructor(options: ComputeExecutorOptions = {}) {
    const concurrency = options.concurrency ?? 1;
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new ModelError('BAD_ARGUMENT', `concurrency must be a positive integer, got ${concurrency}`, { where: 'ComputeExecutor' });
    this.threadBudget = Math.max(1, Math.floor((options.threadBudget ?? computeThreads()) / concurrency));
    const logger = options.logger ?? createLogger('compute');
    const backend = options.backend ?? (process.env.SCALEOT_BACKEND as BackendChoice | undefined);
    this.threads = Array.from({ length: concurrency }, () => new ComputeThread({ backend, threadBudget: this.threadBudget, logger }));
    this.idle = [...this.threads];
  }

  /** Runs `task` on a free thread (after the tasks already waiting); resolves with its result. */
  async run<R = unknown>(task: ComputeTask, options: ComputeRunOptions = {}): Promise<R> {
    if (this.closed) throw new ModelError('CLOSED', 'the compute executor was closed', { where: 'ComputeExecutor', unrecoverable: false });
    const thread = this.idle.shift() ?? (await new Promise<ComputeThread>((resolve) => this.waiting.push(resolve)));
    this.active++;
    try {
      if (this.closed) throw new ModelError('CLOSED', 'the compute executor was closed', { where: 'ComputeExecutor', unrecoverable: false });
      return await thread.run<R>(task, options);
    } finally {
      this.active--;
      const next = this.waiting.shift();
      if (next) next(thread);
      else this.idle.push(thread);
    }
  }

  /** Whether any task is running now. */
  get busy(): boolean {
    return this.active > 0;
  }

  /** Waits for the running and waiting tasks, then terminates the threads. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.busy || this.waiting.length > 0) await new Promise((r) => setTimeout(r, 20));
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  /** Terminates at once: running tasks reject with ABORTED, waiting ones with CLOSED. */
  async terminate(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.terminate()));
    for (const next of this.waiting.splice(0)) next(this.threads[0]);
  }
}
