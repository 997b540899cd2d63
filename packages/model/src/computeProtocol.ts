import type { BackendChoice } from './useBackend.js';

/** A function a compute thread runs: `module` (absolute path or file URL) exports `exportName`. */
export interface ComputeTask<A = unknown> {
  module: string | URL;
  exportName: string;
  /** Structured-cloneable arguments (typed arrays are copied in, results' typed arrays are moved out). */
  args: A;
}

/** What a task function gets besides its arguments, inside the compute thread. */
export interface ComputeTaskContext {
  /** Reports progress to the caller (`onProgress` of `ComputeExecutor.run`); fire and forget. */
  progress(value: unknown): void;
}

/** The signature of a task function: `export async function name(args, ctx) { ... }`. */
export type ComputeTaskFunction<A = unknown, R = unknown> = (args: A, ctx: ComputeTaskContext) => R | Promise<R>;

/** workerData of a compute thread. */
export interface ComputeThreadInit {
  backend?: BackendChoice;
  /** Threads the task may use for data-parallel replicas (read back with `computeThreadBudget()`). */
  threadBudget: number;
}

export type ComputeRequest = { type: 'run'; id: number; module: string; exportName: string; args: unknown };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  unrecoverable?: boolean;
  stack?: string;
}

export type ComputeReply =
  | { type: 'ready' }
  | { type: 'progress'; id: number; value: unknown }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id?: number; error: SerializedError };
