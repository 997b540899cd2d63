import { Worker } from 'node:worker_threads';
import { threadEnv, type Logger } from '@scaleot/core';
import { ComputeError } from './ComputeError.js';
import type { ComputeRunOptions } from './ComputeExecutor.js';
import type { ComputeReply, ComputeTask, ComputeThreadInit, SerializedError } from './computeProtocol.js';
import { ModelError } from './ModelError.js';
import type { BackendChoice } from './useBackend.js';

export interface ComputeThreadOptions {
  backend?: BackendChoice;
  /** Threads a task on this thread may use for its own data-parallel replicas. */
  threadBudget: number;
  logger: Logger;
}

interface Running {
  id: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (value: unknown) => void;
}

/**
 * One compute thread of a ComputeExecutor: a worker thread that selected its backend once and runs one
 * task at a time; it lives across tasks (module-level caches of task modules persist). Aborting a task
 * terminates the thread; the next task starts a fresh one.
 */
export class ComputeThread {
  private worker?: Worker;
  private ready?: Promise<Worker>;
  private running?: Running;
  private nextId = 1;
  private readonly log: Logger;

  constructor(private readonly options: ComputeThreadOptions) {
    this.log = options.logger;
  }

  /** Whether a task is running now. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Runs one task (the caller runs one at a time per thread). */
  async run<R>(task: ComputeTask, options: ComputeRunOptions): Promise<R> {
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
    const init: ComputeThreadInit = { backend: this.options.backend, threadBudget: this.options.threadBudget };
    const worker = new Worker(new URL('./computeWorker.js', import.meta.url), { workerData: init, env: threadEnv() });
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

  /** Terminates the thread; a running task rejects with `reason`. */
  async terminate(reason?: Error): Promise<void> {
    const worker = this.worker;
    this.discard(reason ?? new ModelError('ABORTED', 'the compute executor was terminated', { where: 'ComputeExecutor', unrecoverable: false }));
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
