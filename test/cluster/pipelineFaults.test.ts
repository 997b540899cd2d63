import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipelineEvaluation } from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { modelTensorBytes, readModelConfig, useBackend } from '@scaleot/model';
import { evaluate } from '@scaleot/offsite';
import { JobQueue } from '@scaleot/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../support/fixtures.js';
import { DATA_ROOT, REDIS_URL, spawnApp, stopProcess, uniquePrefix, type SpawnedProcess } from './helpers.js';

// kill -9 of a stage worker mid-run: the coordinator notices (the stage job is re-queued by BullMQ's
// stalled check and refuses to restart itself), frees the other stages, plans again over the workers
// still alive and runs again; the protocol is deterministic, so the result equals an uninterrupted
// single-process evaluation within 1e-6 relative.
const LLAMA = join(FIXTURES_DIR, 'models', 'sotu-llama-24l');
const MAX_BLOCKS = 12;
const PLAN = { fixedOverheadBytes: 64 * 2 ** 20, activationBytes: 8 * 2 ** 20, weightSlack: 0.05 };

describe('pipeline evaluation survives a stage worker killed mid-run', () => {
  const prefix = uniquePrefix('pipefault');
  const workers: SpawnedProcess[] = [];
  let storage: string;
  let queue: JobQueue;

  beforeAll(async () => {
    storage = await mkdtemp(join(tmpdir(), 'scaleot-pipefault-'));
    queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    for (let i = 0; i < 4; i++) {
      workers.push(spawnApp('worker', { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_JOB_LOCK_MS: '2000', SCALEOT_STALLED_INTERVAL_MS: '1000' }));
    }
    await Promise.all(workers.map((w) => w.waitForLog('worker ready', 90_000)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopProcess(w)));
    await queue?.queue.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    await rm(storage, { recursive: true, force: true });
  });

  it('kill -9 of the middle stage: run again under a new plan, same perplexity', async () => {
    await useBackend('wasm');
    const single = await evaluate({ modelDir: LLAMA, task: 'moby', dataRoot: DATA_ROOT, maxBlocks: MAX_BLOCKS, batchSize: MAX_BLOCKS });
    const bytes = modelTensorBytes(await readModelConfig(LLAMA));
    const budget = PLAN.fixedOverheadBytes + PLAN.activationBytes + bytes.largestTensor + 0.45 * bytes.total * (1 + PLAN.weightSlack);

    // Killed once the first micro-batch came back through all three stages: mid-run, with the
    // following micro-batches in flight.
    const metrics = createMetrics();
    let killed: number | undefined;
    const killer = (async () => {
      const victim = await Promise.race(workers.map((w) => w.waitForLog('pipeline stage loaded', 120_000).then((r) => (r.stage === 1 ? w : new Promise<never>(() => undefined)))));
      while ((await metrics.pipelineStageStepSeconds.get()).values.length < 3) await new Promise((r) => setTimeout(r, 20));
      killed = victim.pid;
      victim.proc.kill('SIGKILL');
    })();
    const run = await runPipelineEvaluation({ metrics, queue, model: LLAMA, storageDir: storage, task: 'moby', dataRoot: DATA_ROOT, budgets: [budget, budget, budget], plan: PLAN, maxBlocks: MAX_BLOCKS, batchSize: MAX_BLOCKS, microBatch: 1, retries: 2 });
    await killer;

    expect(killed).toBeDefined();
    expect(run.attempts).toBe(2);
    expect(run.plan.stages).toHaveLength(3);
    expect(run.result.count).toBe(single.count);
    expect(Math.abs(run.result.value - single.value) / single.value).toBeLessThanOrEqual(1e-6);
  });
});
