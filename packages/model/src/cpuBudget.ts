import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

/** The cgroup v2 CPU limit (a pod's `resources.limits.cpu`), rounded down, or undefined when unlimited. */
export function cgroupCpuLimit(file = '/sys/fs/cgroup/cpu.max'): number | undefined {
  try {
    const [quota, period] = readFileSync(file, 'utf8').trim().split(/\s+/);
    if (quota === 'max') return undefined;
    const cpus = Number(quota) / Number(period);
    return Number.isFinite(cpus) && cpus > 0 ? Math.max(1, Math.floor(cpus)) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Threads one job may use: available parallelism, capped by the cgroup CPU limit and by
 * `SCALEOT_THREADS` (a positive integer) when set. Inside a compute thread: the budget its executor gave it.
 */
export function computeThreads(env: NodeJS.ProcessEnv = process.env): number {
  if (!isMainThread && typeof (workerData as { threadBudget?: unknown } | undefined)?.threadBudget === 'number') return (workerData as { threadBudget: number }).threadBudget;
  let n = availableParallelism();
  const limit = cgroupCpuLimit();
  if (limit !== undefined) n = Math.min(n, limit);
  const setting = env.SCALEOT_THREADS ? Number(env.SCALEOT_THREADS) : undefined;
  if (setting !== undefined && Number.isInteger(setting) && setting >= 1) n = Math.min(n, setting);
  return Math.max(1, n);
}

/**
 * Data-parallel replicas for a training loop on the active backend: `computeThreads()` on the CPU
 * backends (wasm, cpu), where each replica is a core; 1 elsewhere (webgpu, tensorflow), where the
 * device is the parallelism and replica threads would only add synchronous reads and copies.
 */
export function trainingThreads(env: NodeJS.ProcessEnv = process.env): number {
  return ['wasm', 'cpu'].includes(tf.getBackend()) ? computeThreads(env) : 1;
}
