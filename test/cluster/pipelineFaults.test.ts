import { runPipelineEvaluation } from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { useBackend } from '@scaleot/model';
import { evaluate } from '@scaleot/offsite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT } from './helpers.js';
import { LLAMA_24L, PIPELINE_PLAN, pipelineBudget, startWorkerPool, type WorkerPool } from './pipelineHelpers.js';

// kill -9 of a stage worker mid-run: the coordinator notices (the stage job is re-queued by BullMQ's
// stalled check and refuses to restart itself), frees the other stages, plans again over the workers
// still alive and runs again; the protocol is deterministic, so the result equals an uninterrupted
// single-process evaluation within 1e-6 relative.
const MAX_BLOCKS = 12;

describe('pipeline evaluation survives a stage worker killed mid-run', () => {
  let pool: WorkerPool;

  beforeAll(async () => {
    pool = await startWorkerPool('pipefault', 4, { SCALEOT_JOB_LOCK_MS: '2000', SCALEOT_STALLED_INTERVAL_MS: '1000' });
  });

  afterAll(async () => {
    await pool?.stop();
  });

  it('kill -9 of the middle stage: run again under a new plan, same perplexity', async () => {
    await useBackend('wasm');
    const single = await evaluate({ modelDir: LLAMA_24L, task: 'moby', dataRoot: DATA_ROOT, maxBlocks: MAX_BLOCKS, batchSize: MAX_BLOCKS });
    const budget = await pipelineBudget(LLAMA_24L, 0.45);

    // Killed once the first micro-batch came back through all three stages: mid-run, with the
    // following micro-batches in flight.
    const metrics = createMetrics();
    let killed: number | undefined;
    const killer = (async () => {
      const victim = await Promise.race(pool.workers.map((w) => w.waitForLog('pipeline stage loaded', 120_000).then((r) => (r.stage === 1 ? w : new Promise<never>(() => undefined)))));
      while ((await metrics.pipelineStageStepSeconds.get()).values.length < 3) await new Promise((r) => setTimeout(r, 20));
      killed = victim.pid;
      victim.proc.kill('SIGKILL');
    })();
    const run = await runPipelineEvaluation({ metrics, queue: pool.queue, model: LLAMA_24L, storageDir: pool.storage, task: 'moby', dataRoot: DATA_ROOT, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, maxBlocks: MAX_BLOCKS, batchSize: MAX_BLOCKS, microBatch: 1, retries: 2 });
    await killer;

    expect(killed).toBeDefined();
    expect(run.attempts).toBe(2);
    expect(run.plan.stages).toHaveLength(3);
    expect(run.result.count).toBe(single.count);
    expect(Math.abs(run.result.value - single.value) / single.value).toBeLessThanOrEqual(1e-6);
  });
});
