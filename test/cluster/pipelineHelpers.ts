// Scaffolding of the pipeline-parallel tests: the model they split, the planner's constants, and a pool
// of real worker processes on one fresh queue prefix.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelTensorBytes, readModelConfig } from '@scaleot/model';
import { JobQueue } from '@scaleot/queue';
import { FIXTURES_DIR } from '../support/fixtures.js';
import { REDIS_URL, spawnApp, stopProcess, uniquePrefix, type SpawnedProcess } from './helpers.js';

/** The deep LLaMA the pipeline tests split, and the planning constants they give the planner. */
export const LLAMA_24L = join(FIXTURES_DIR, 'models', 'sotu-llama-24l');
export const PIPELINE_PLAN = { fixedOverheadBytes: 64 * 2 ** 20, activationBytes: 8 * 2 ** 20, weightSlack: 0.05 };

/** A worker budget that holds `fraction` of the model's float32 weights under PIPELINE_PLAN's overheads. */
export async function pipelineBudget(modelDir: string, fraction: number): Promise<number> {
  const bytes = modelTensorBytes(await readModelConfig(modelDir));
  return PIPELINE_PLAN.fixedOverheadBytes + PIPELINE_PLAN.activationBytes + bytes.largestTensor + fraction * bytes.total * (1 + PIPELINE_PLAN.weightSlack);
}

export interface WorkerPool {
  workers: SpawnedProcess[];
  queue: JobQueue;
  storage: string;
  /** Stops the workers, removes the queue's keys and the storage directory. */
  stop(): Promise<void>;
}

/** `count` real worker processes on a fresh queue prefix and storage directory, each ready. */
export async function startWorkerPool(name: string, count: number, env: Record<string, string> = {}): Promise<WorkerPool> {
  const prefix = uniquePrefix(name);
  const storage = await mkdtemp(join(tmpdir(), `scaleot-${name}-`));
  const queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
  const workers = Array.from({ length: count }, () =>
    spawnApp('worker', { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', ...env }),
  );
  const stop = async () => {
    await Promise.all(workers.map((w) => stopProcess(w)));
    await queue.queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await rm(storage, { recursive: true, force: true });
  };
  try {
    await Promise.all(workers.map((w) => w.waitForLog('worker ready', 90_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return { workers, queue, storage, stop };
}
