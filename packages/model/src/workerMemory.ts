import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { PipelinePlanError } from './PipelinePlanError.js';

/** The cgroup memory limit (a pod's `resources.limits.memory`; v2, else v1), or undefined when unlimited. */
export function cgroupMemoryLimit(files = ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']): number | undefined {
  for (const file of files) {
    try {
      const raw = readFileSync(file, 'utf8').trim();
      if (raw === 'max') return undefined;
      const bytes = Number(raw);
      // v1 reports "no limit" as a huge number near 2^63.
      if (Number.isSafeInteger(bytes) && bytes > 0 && bytes < 2 ** 60) return bytes;
    } catch {
      // not this cgroup version
    }
  }
  return undefined;
}

/**
 * The memory one worker process may use: `SCALEOT_WORKER_MEMORY_BYTES` when set (the chart sets it from
 * the pod's memory limit), else the cgroup memory limit, else the machine's memory.
 */
export function workerMemoryBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SCALEOT_WORKER_MEMORY_BYTES;
  if (raw !== undefined && raw !== '') {
    const bytes = Number(raw);
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new PipelinePlanError('BAD_MEMORY_SETTING', `SCALEOT_WORKER_MEMORY_BYTES must be a positive integer number of bytes, got "${raw}"`);
    }
    return bytes;
  }
  const limit = cgroupMemoryLimit();
  return limit !== undefined ? Math.min(limit, totalmem()) : totalmem();
}
