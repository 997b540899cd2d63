import { runPipelineEvaluation } from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { modelTensorBytes, readModelConfig, useBackend } from '@scaleot/model';
import { evaluate } from '@scaleot/offsite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT } from './helpers.js';
import { LLAMA_24L, PIPELINE_PLAN, pipelineBudget, startWorkerPool, type WorkerPool } from './pipelineHelpers.js';

// sotu-llama-24l split over 3 real worker processes (real Redis queue, ZeroMQ worker to worker) scores
// the Moby-Dick protocol (first blocks only, for speed) like one process does, within 1e-6 relative.
const MAX_BLOCKS = 6;
const REL_TOL = 1e-6;

describe('pipeline-parallel evaluation across worker processes', () => {
  let pool: WorkerPool;

  beforeAll(async () => {
    pool = await startWorkerPool('pipe', 3, { SCALEOT_ADVERTISE_HOST: '127.0.0.1' });
  });

  afterAll(async () => {
    await pool?.stop();
  });

  it('3 stages give the single-process perplexity within 1e-6 relative; the plan and per-stage figures reach /metrics', async () => {
    await useBackend('wasm');
    const single = await evaluate({ modelDir: LLAMA_24L, task: 'moby', dataRoot: DATA_ROOT, maxBlocks: MAX_BLOCKS, batchSize: 6 });

    const config = await readModelConfig(LLAMA_24L);
    const bytes = modelTensorBytes(config);
    // Each worker may hold about 45% of the model: two cannot, three can.
    const budget = await pipelineBudget(LLAMA_24L, 0.45);
    const metrics = createMetrics({ defaultLabels: { service: 'coordinator' } });
    const run = await runPipelineEvaluation({ queue: pool.queue, model: LLAMA_24L, storageDir: pool.storage, task: 'moby', dataRoot: DATA_ROOT, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, maxBlocks: MAX_BLOCKS, batchSize: 6, microBatch: 1, metrics });

    expect(run.plan.stages.map((s) => [s.from, s.to])).toHaveLength(3);
    expect(run.plan.stages[0].from).toBe(0);
    expect(run.plan.stages[2].to).toBe(24);
    expect(run.result.count).toBe(single.count);
    expect(Math.abs(run.result.value - single.value) / single.value).toBeLessThanOrEqual(REL_TOL);
    expect(Math.abs(run.result.nll! - single.nll!) / single.nll!).toBeLessThanOrEqual(REL_TOL);

    // Three distinct worker processes, each having read only its share of the checkpoint.
    const pids = new Set(pool.workers.filter((w) => w.logs.some((r) => r.msg === 'pipeline stage loaded')).map((w) => w.pid));
    expect(pids.size).toBe(3);
    expect(new Set(run.ready.map((r) => r.address)).size).toBe(3);
    for (const r of run.ready) expect(r.bytesRead).toBeLessThan(0.6 * (bytes.total / 2)); // BF16 on disk: half the float32 bytes
    // Activations went stage to stage: hidden states [1, 256, 128] float32 for every micro-batch over 2 hops.
    expect(run.microBatches).toBe(MAX_BLOCKS);
    expect(run.interStageBytes).toBeGreaterThanOrEqual(2 * MAX_BLOCKS * 256 * config.hiddenSize * 4);
    expect(run.stages.map((s) => s.steps)).toEqual([MAX_BLOCKS, MAX_BLOCKS, MAX_BLOCKS]);

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/scaleot_pipeline_stages\{service="coordinator"\} 3/);
    for (const s of run.plan.stages) {
      const series = (name: string) => text.split('\n').find((line) => line.startsWith(`${name}{`) && line.includes(`stage="${s.index}"`) && line.includes(`blocks="${s.from}-${s.to}"`));
      expect(Number(series('scaleot_pipeline_stage_memory_bytes')?.split(' ').at(-1))).toBeGreaterThan(50 * 2 ** 20);
      expect(Number(series('scaleot_pipeline_stage_step_seconds')?.split(' ').at(-1))).toBeGreaterThan(0);
    }
  });
});
