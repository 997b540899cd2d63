import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { PlacingJobRunner, planPlacement, runClusterStage1, WorkerRegistry, type JobRunner } from '@scaleot/cluster';
import { useBackend } from '@scaleot/model';
import { evaluate, readAdapter } from '@scaleot/offsite';
import type { AnyJobPayload, JobKind } from '@scaleot/queue';
import { buildScaleotEmulator } from '@scaleot/scaleot';
import { corpusStreams, runStage1, type Stage1Result } from '@scaleot/scaleot';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, REDIS_URL, stopProcess, TINY_STAGE1 } from './helpers.js';
import { LLAMA_24L, PIPELINE_PLAN, pipelineBudget, startWorkerPool, type WorkerPool } from './pipelineHelpers.js';

// The coordinator's choice for stage 1, from what real worker processes report: three workers that may
// each hold about 45% of sotu-llama-24l make it a 3-stage pipeline, two with room for the whole model
// keep the data-parallel shards. Either way one step gives the single-process step (same seed). The
// coordinator's job runner places tuning and evaluation jobs the same way: a model too large for one
// worker is tuned and scored on pipeline stages, with the job's own result and files.
const ONE_STEP = { ...TINY_STAGE1, steps: 1 };
const LARGE_BUDGET = 8 * 2 ** 30;
let small: WorkerPool;
let large: WorkerPool;
let budget: number;
let scratch: string;
let streams: { train: Int32Array; val: Int32Array };
let reference: Stage1Result;
const registries: WorkerRegistry[] = [];

function registryOf(pool: WorkerPool): WorkerRegistry {
  const registry = new WorkerRegistry({ connection: REDIS_URL, prefix: pool.queue.prefix });
  registries.push(registry);
  return registry;
}

beforeAll(async () => {
  budget = Math.floor(await pipelineBudget(LLAMA_24L, 0.45));
  [small, large] = await Promise.all([
    startWorkerPool('placement-small', 3, { SCALEOT_WORKER_MEMORY_BYTES: String(budget) }),
    startWorkerPool('placement-large', 2, { SCALEOT_WORKER_MEMORY_BYTES: String(LARGE_BUDGET) }),
  ]);
  await useBackend('wasm');
  scratch = await mkdtemp(join(tmpdir(), 'scaleot-placement-'));
  streams = await corpusStreams('sotu', DATA_ROOT, LLAMA_24L, 6);
  reference = await runStage1({ modelDir: LLAMA_24L, outDir: join(scratch, 'reference'), streams, ...ONE_STEP });
});

afterAll(async () => {
  await Promise.all(registries.map((r) => r.close()));
  await Promise.all([small?.stop(), large?.stop()]);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function expectReferenceStep(result: Stage1Result): void {
  expect(result.completed).toBe(true);
  expect(result.log).toHaveLength(1);
  // Same draws, same update: the mask and the rollout's choice agree exactly, the losses within 1e-5
  // (float summation order across stages or shards).
  expect(result.log[0].replaced).toEqual(reference.log[0].replaced);
  expect(result.log[0].rollouts?.replaced).toEqual(reference.log[0].rollouts?.replaced);
  expect(Math.abs(result.log[0].loss - reference.log[0].loss)).toBeLessThan(1e-5);
  for (let i = 0; i < reference.scores.length; i++) expect(Math.abs(result.scores[i] - reference.scores[i])).toBeLessThan(1e-5);
}

describe('stage 1 placed by the workers\' memory budgets', () => {
  it('every worker reports its budget, queues and pid in the registry', async () => {
    const records = await registryOf(small).list();
    expect(records).toHaveLength(3);
    expect(records.map((r) => r.memoryBytes)).toEqual([budget, budget, budget]);
    expect(records.map((r) => r.pid).sort()).toEqual(small.workers.map((w) => w.pid).sort());
    for (const r of records) expect(r.queues).toEqual(['scaleot']);
    // Another queue's view holds none of them; the other install's registry holds its own two.
    expect(await registryOf(small).list({ queue: 'gpu' })).toEqual([]);
    expect((await registryOf(large).list()).map((r) => r.memoryBytes)).toEqual([LARGE_BUDGET, LARGE_BUDGET]);
  });

  it('a model larger than one worker: a 3-stage pipeline, the single-process step', async () => {
    const result = await runClusterStage1({
      registry: registryOf(small), queue: small.queue, connection: REDIS_URL, modelDir: LLAMA_24L, outDir: join(scratch, 'pipeline'), storageDir: small.storage, streams, plan: PIPELINE_PLAN, ...ONE_STEP,
    });
    expect(result.placement.mode).toBe('pipeline');
    expect(result.plan!.stages).toHaveLength(3);
    expect(result.plan!.stages.every((s) => s.budgetBytes === budget && s.estimatedBytes <= budget)).toBe(true);
    expectReferenceStep(result);
    // Three distinct workers loaded one stage each; none ran a data-parallel shard.
    expect(small.workers.filter((w) => w.logs.some((r) => r.msg === 'pipeline stage loaded'))).toHaveLength(3);
    expect(small.workers.some((w) => w.logs.some((r) => r.kind === 'stage1.shard'))).toBe(false);
  });

  it('a model that fits one worker: data-parallel shards as before, the single-process step', async () => {
    const result = await runClusterStage1({
      registry: registryOf(large), queue: large.queue, connection: REDIS_URL, modelDir: LLAMA_24L, outDir: join(scratch, 'shards'), storageDir: large.storage, streams, shards: 2, plan: PIPELINE_PLAN, ...ONE_STEP,
    });
    expect(result.placement).toMatchObject({ mode: 'data-parallel', reason: 'fits-one-worker' });
    expect(result.placement.plan!.stages).toHaveLength(1);
    expectReferenceStep(result);
    expect(large.workers.some((w) => w.logs.some((r) => r.msg === 'job completed' && r.kind === 'stage1.shard'))).toBe(true);
    expect(large.workers.some((w) => w.logs.some((r) => r.msg === 'pipeline stage loaded'))).toBe(false);
  });

  it('no budget reported (no registered worker on the queue): data-parallel, as before', async () => {
    expect(await planPlacement(LLAMA_24L, [])).toMatchObject({ mode: 'data-parallel', reason: 'no-budgets' });
  });

  it('entries expire without refreshes; a closing worker removes its own', async () => {
    const registry = registryOf(large);
    const redis = new Redis(REDIS_URL);
    try {
      const index = `${large.queue.prefix}:worker-registry`;
      const [first] = await registry.list();
      // Each entry is a key with a TTL (Redis' clock): a worker killed with -9 drops out by itself.
      const ttl = await redis.pttl(`${index}:${first.id}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_000);
      // An index member whose key has expired is not listed, and leaves the index.
      await redis.sadd(index, 'gone-worker');
      expect((await registry.list()).map((r) => r.id)).not.toContain('gone-worker');
      expect(await redis.sismember(index, 'gone-worker')).toBe(0);
      // SIGTERM: the worker drains and takes itself out of the registry.
      await stopProcess(large.workers[0]);
      expect((await registry.list()).map((r) => r.pid)).toEqual([large.workers[1].pid]);
    } finally {
      redis.disconnect();
    }
  });
});

/** A job runner that records what reaches it (the queue runner the coordinator wraps). */
function recordingRunner(): JobRunner & { calls: { kind: JobKind; payload: AnyJobPayload }[] } {
  const calls: { kind: JobKind; payload: AnyJobPayload }[] = [];
  return {
    mode: 'queue',
    calls,
    run: async <T>(kind: JobKind, payload: AnyJobPayload) => {
      calls.push({ kind, payload });
      return { ranBy: 'worker job' } as T;
    },
    cancelGroup: async () => ({ removed: 0, signalled: 0 }),
    close: async () => undefined,
  };
}

describe('tuning and evaluation jobs placed by the workers\' memory budgets', () => {
  const TUNE = { steps: 2, batchSize: 2, microBatchSize: 1, seqLen: 32, lr: 1e-3, warmupSteps: 1 };
  const EVAL = { maxBlocks: 3, evalBatchSize: 3 };

  it('an emulator too large for one worker is tuned and scored on pipeline stages, with the job\'s artifact and result file', async () => {
    const inner = recordingRunner();
    const runner = new PlacingJobRunner({ inner, registry: registryOf(small), stageQueue: small.queue, storageDir: small.storage, dataRoot: DATA_ROOT, plan: PIPELINE_PLAN });
    const { outDir: emulatorDir } = await buildScaleotEmulator({ modelDir: LLAMA_24L, outDir: join(scratch, 'emulator'), alpha: 0, beta: 0.5, srcStorage: 'factors' });
    const adapterDir = join(scratch, 'adapter');
    const progress: unknown[] = [];
    const tuned = await runner.run<{ steps: number; stages: number }>('tune', { tenant: 't', tuneId: 't1', emulator: emulatorDir, task: 'moby', output: adapterDir, hyper: TUNE }, { group: 'r1', onProgress: (v) => progress.push(v) });
    expect(tuned).toMatchObject({ steps: 2, stages: 3 });
    expect(progress).toHaveLength(2);
    expect((await readAdapter(adapterDir)).tensors.size).toBeGreaterThan(0);

    const output = join(scratch, 'eval', 'emulator-fine-tuned.json');
    const scored = await runner.run<{ value: number; evaluationId: string }>('evaluate', { tenant: 't', evaluationId: 'e1', model: emulatorDir, task: 'moby', output, hyper: { ...EVAL, adapter: adapterDir } }, { group: 'r1' });
    // The tuned adapter's weights went to the stages holding its blocks: the single-process score of emulator + adapter.
    const single = await evaluate({ emulatorDir, adapterDir, task: 'moby', dataRoot: DATA_ROOT, maxBlocks: EVAL.maxBlocks, batchSize: EVAL.evalBatchSize });
    expect(Math.abs(scored.value - single.value) / single.value).toBeLessThan(1e-5);
    expect(JSON.parse(await readFile(output, 'utf8'))).toMatchObject({ evaluationId: 'e1', value: scored.value });
    expect(inner.calls).toEqual([]);
  });

  it('a model that fits one worker goes to the worker jobs as before; a cancelled pipeline job stops', async () => {
    // The 8 GiB workers hold the whole model: the job goes to the inner (queue) runner untouched.
    const roomy = recordingRunner();
    const payload = { tenant: 't', evaluationId: 'e2', model: LLAMA_24L, task: 'moby', hyper: EVAL };
    expect(await new PlacingJobRunner({ inner: roomy, registry: registryOf(large), stageQueue: large.queue, storageDir: large.storage, plan: PIPELINE_PLAN }).run('evaluate', payload)).toEqual({ ranBy: 'worker job' });
    expect(roomy.calls).toEqual([{ kind: 'evaluate', payload }]);

    const inner = recordingRunner();
    const runner = new PlacingJobRunner({ inner, registry: registryOf(small), stageQueue: small.queue, storageDir: small.storage, dataRoot: DATA_ROOT, plan: PIPELINE_PLAN });
    const cancelled = runner.run('evaluate', { tenant: 't', evaluationId: 'e3', model: LLAMA_24L, task: 'moby', hyper: { fullFineTune: true, ...TUNE, steps: 50, ...EVAL } }, { group: 'r2' });
    const loaded = small.workers.map((w) => w.logs.filter((r) => r.msg === 'pipeline stage loaded').length);
    while (!small.workers.some((w, i) => w.logs.filter((r) => r.msg === 'pipeline stage loaded').length > loaded[i])) await new Promise((r) => setTimeout(r, 50));
    expect(await runner.cancelGroup('r2')).toMatchObject({ signalled: 1 });
    await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
    // The stages were told to stop: each stage job ends (its worker is free again).
    const aborted = () => small.workers.filter((w) => w.logs.some((r) => r.msg === 'pipeline run aborted')).length;
    const deadline = Date.now() + 20_000;
    while (aborted() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(aborted()).toBe(3);
  });
});
