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

// sotu-llama-24l split over 3 real worker processes (real Redis queue, ZeroMQ worker to worker) scores
// the Moby-Dick protocol (first blocks only, for speed) like one process does, within 1e-6 relative.
const LLAMA = join(FIXTURES_DIR, 'models', 'sotu-llama-24l');
const MAX_BLOCKS = 6;
const REL_TOL = 1e-6;
const PLAN = { fixedOverheadBytes: 64 * 2 ** 20, activationBytes: 8 * 2 ** 20, weightSlack: 0.05 };

describe('pipeline-parallel evaluation across worker processes', () => {
  const prefix = uniquePrefix('pipe');
  const workers: SpawnedProcess[] = [];
  let storage: string;
  let queue: JobQueue;

  beforeAll(async () => {
    storage = await mkdtemp(join(tmpdir(), 'scaleot-pipe-'));
    queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    for (let i = 0; i < 3; i++) {
      workers.push(spawnApp('worker', { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_ADVERTISE_HOST: '127.0.0.1' }));
    }
    await Promise.all(workers.map((w) => w.waitForLog('worker ready', 90_000)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopProcess(w)));
    await queue?.queue.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    await rm(storage, { recursive: true, force: true });
  });

  it('3 stages give the single-process perplexity within 1e-6 relative; the plan and per-stage figures reach /metrics', async () => {
    await useBackend('wasm');
    const single = await evaluate({ modelDir: LLAMA, task: 'moby', dataRoot: DATA_ROOT, maxBlocks: MAX_BLOCKS, batchSize: 6 });

    const config = await readModelConfig(LLAMA);
    const bytes = modelTensorBytes(config);
    // Each worker may hold about 45% of the model: two cannot, three can.
    const budget = PLAN.fixedOverheadBytes + PLAN.activationBytes + bytes.largestTensor + 0.45 * bytes.total * (1 + PLAN.weightSlack);
    const metrics = createMetrics({ defaultLabels: { service: 'coordinator' } });
    const run = await runPipelineEvaluation({ queue, model: LLAMA, storageDir: storage, task: 'moby', dataRoot: DATA_ROOT, budgets: [budget, budget, budget], plan: PLAN, maxBlocks: MAX_BLOCKS, batchSize: 6, microBatch: 1, metrics });

    expect(run.plan.stages.map((s) => [s.from, s.to])).toHaveLength(3);
    expect(run.plan.stages[0].from).toBe(0);
    expect(run.plan.stages[2].to).toBe(24);
    expect(run.result.count).toBe(single.count);
    expect(Math.abs(run.result.value - single.value) / single.value).toBeLessThanOrEqual(REL_TOL);
    expect(Math.abs(run.result.nll! - single.nll!) / single.nll!).toBeLessThanOrEqual(REL_TOL);

    // Three distinct worker processes, each having read only its share of the checkpoint.
    const pids = new Set(workers.filter((w) => w.logs.some((r) => r.msg === 'pipeline stage loaded')).map((w) => w.pid));
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
