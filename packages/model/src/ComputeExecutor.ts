import { Worker } from 'node:worker_threads';
import { ScaleotError, createLogger, type Logger } from '@scaleot/core';
import type { ComputeReply, ComputeTask, ComputeThreadInit, SerializedError } from './computeProtocol.js';
import { computeThreads } from './cpuBudget.js';
import { ModelError } from './ModelError.js';
import type { BackendChoice } from './useBackend.js';

export interface ComputeExecutorOptions {
  /** Backend the compute threads select (default: SCALEOT_BACKEND, else wasm). */
  backend?: BackendChoice;
  /** Threads a task may use for its own data-parallel replicas (default: `computeThreads()`). */
  threadBudget?: number;
  logger?: Logger;
}

export interface ComputeRunOptions {
  /** Aborting terminates the thread running the task at once; `run` rejects with code ABORTED. */
  signal?: AbortSignal;
  onProgress?: (value: unknown) => void;
}

/** An error thrown inside a compute thread, with its code and retry verdict carried across. */
export class ComputeError extends ScaleotError {}

interface Running {
  id: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (value: unknown) => void;
}

/**
 * Runs compute (training loops, evaluation, stage-1 steps) in a worker thread so the process' event loop
 * keeps serving: job locks renew, health checks answer, signals are handled. One thread, one task at a
 * time (a tfjs engine and wasm heap per thread); the thread lives across tasks, so module-level caches in
 * task modules (a loaded base model) are reused. Aborting a task terminates its thread (compute stops
 * within milliseconds, not at the next step boundary); the next task starts a fresh one.
 */
export class ComputeExecutor {
  private worker?: Worker;
  private ready?: Promise<Worker>;
  private running?: Running;
  private nextId = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;
  readonly threadBudget: number;

  constructor(private readonly options: ComputeExecutorOptions = {}) {
    this.log = options.logger ?? createLogger('compute');
    this.threadBudget = options.threadBudget ?? computeThreads();
  }

  /** Runs `task` after the tasks already queued; resolves with its result. */
  run<R = unknown>(task: ComputeTask, options: ComputeRunOptions = {}): Promise<R> {
    const next = this.tail.then(() => this.runNow<R>(task, options));
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Whether a task is running now. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  private async runNow<R>(task: ComputeTask, options: ComputeRunOptions): Promise<R> {
    if (this.closed) throw new ModelError('CLOSED', 'the compute executor was closed', { where: 'ComputeExecutor', unrecoverable: false });
    const { signal } = options;
    if (signal?.aborted) throw aborted(signal);
    const worker = await this.thread();
    if (signal?.aborted) throw aborted(signal);
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => {
        this.log.info({ task: task.exportName, reason: String(signal?.reason ?? 'aborted') }, 'compute aborted: terminating its thread');
        this.discard(aborted(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.running = {
        id,
        resolve: (v) => {
          done();
          resolve(v as R);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        onProgress: options.onProgress,
      };
      worker.ref();
      worker.postMessage({ type: 'run', id, module: task.module instanceof URL ? task.module.href : task.module, exportName: task.exportName, args: task.args });
    });
  }

  private thread(): Promise<Worker> {
    if (this.ready) return this.ready;
    const init: ComputeThreadInit = { backend: this.options.backend ?? (process.env.SCALEOT_BACKEND as BackendChoice | undefined), threadBudget: this.threadBudget };
    const worker = new Worker(new URL('./computeWorker.js', import.meta.url), { workerData: init });
    this.worker = worker;
    this.ready = new Promise<Worker>((resolve, reject) => {
      worker.on('message', (msg: ComputeReply) => {
        if (msg.type === 'ready') return resolve(worker);
        if (msg.type === 'error' && msg.id === undefined) {
          const err = revive(msg.error, 'the compute thread failed to start');
          reject(err);
          return this.discard(err);
        }
        const running = this.running;
        if (!running || msg.id !== running.id) return;
        if (msg.type === 'progress') return running.onProgress?.(msg.value);
        this.running = undefined;
        worker.unref();
        if (msg.type === 'result') running.resolve(msg.value);
        else running.reject(revive(msg.error));
      });
      worker.on('error', (e) => {
        const err = new ModelError('COMPUTE_THREAD_DIED', `the compute thread died: ${e.message}`, { where: 'ComputeExecutor', cause: e, unrecoverable: false });
        reject(err);
        if (this.worker === worker) this.discard(err);
      });
      worker.on('exit', (code) => {
        if (this.worker !== worker) return;
        const err = new ModelError('COMPUTE_THREAD_DIED', `the compute thread exited with code ${code}`, { where: 'ComputeExecutor', unrecoverable: false });
        reject(err);
        this.discard(err);
      });
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  /** Drops the current thread (terminating it) and fails the running task with `err`. */
  private discard(err: Error): void {
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    const running = this.running;
    this.running = undefined;
    running?.reject(err);
    if (worker) void worker.terminate();
  }

  /** Waits for queued tasks, then terminates the thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    if (worker) await worker.terminate();
  }

  /** Terminates at once: the running task rejects with ABORTED. */
  async terminate(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.discard(new ModelError('ABORTED', 'the compute executor was terminated', { where: 'ComputeExecutor', unrecoverable: false }));
    if (worker) await worker.terminate();
  }
}

function aborted(signal: AbortSignal): ModelError {
  const reason = signal.reason instanceof Error ? signal.reason.message : signal.reason === undefined ? 'aborted' : String(signal.reason);
  return new ModelError('ABORTED', `compute stopped: ${reason}`, { where: 'ComputeExecutor', unrecoverable: true });
}

function revive(e: SerializedError, context?: string): ComputeError {
  const err = new ComputeError(e.code ?? 'COMPUTE_FAILED', context ? `${context}: ${e.message}` : e.message, { unrecoverable: e.unrecoverable ?? false });
  if (e.stack) err.stack = `${err.name}: ${err.message}\n  in the compute thread:\n${e.stack}`;
  return err;
}
