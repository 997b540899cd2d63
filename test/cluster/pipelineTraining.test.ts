import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipelineTraining } from '@scaleot/cluster';
import { loadModel, useBackend, type CausalLM } from '@scaleot/model';
import { adapterWeights, DEFAULT_TRAIN, evaluateModel, loadEmulator, readAdapter, resolveTask, TaskBatcher, trainLoop, tuneAdapterInMemory, type TrainHyperParameters } from '@scaleot/offsite';
import { buildScaleotEmulator } from '@scaleot/scaleot';
import { Tokenizer } from '@scaleot/tokenizer';
import type * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT } from './helpers.js';
import { LLAMA_24L, PIPELINE_PLAN, pipelineBudget, startWorkerPool, type WorkerPool } from './pipelineHelpers.js';

// Training sotu-llama-24l on 3 real stage workers (each may hold about 45% of the model): the owner's
// full fine-tuning baseline and adapter tuning (blocks 0, 1, 22, 23) give the single-process runs with
// the same seed, gradients flowing backward stage to stage over ZeroMQ; the full fine-tune's model is
// then scored on the same stages; a data owner's adapter tuning on an emulator (SRC-factored middle)
// gives the single-process adapter and emulator score. A fourth worker stands by for kill -9 of a
// stage mid-step.
const HYPER: Partial<TrainHyperParameters> = { steps: 3, batchSize: 4, microBatchSize: 2, seqLen: 32, lr: 1e-3, warmupSteps: 1, seed: 5 };
const ADAPTERS = [0, 1, 22, 23];
const EVAL_BLOCKS = 4;
let pool: WorkerPool;
let budget: number;
let scratch: string;

beforeAll(async () => {
  pool = await startWorkerPool('pipetrain', 4, { SCALEOT_JOB_LOCK_MS: '5000', SCALEOT_STALLED_INTERVAL_MS: '2000' });
  await useBackend('wasm');
  budget = await pipelineBudget(LLAMA_24L, 0.45);
  scratch = await mkdtemp(join(tmpdir(), 'scaleot-pipetrain-'));
});

afterAll(async () => {
  await pool?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Single-process trainLoop on the loaded model (one thread), training `select`'s weights. */
async function singleProcess(select: (name: string) => boolean): Promise<{ model: CausalLM; losses: number[]; weights: Map<string, tf.Variable> }> {
  const model = await loadModel(LLAMA_24L);
  const task = await resolveTask('moby', DATA_ROOT);
  const tokenizer = await Tokenizer.fromDir(LLAMA_24L);
  const hyper = { ...DEFAULT_TRAIN, ...HYPER };
  const weights = new Map([...model.namedWeights()].filter(([n]) => select(n)));
  const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen!, seed: hyper.seed });
  const { losses } = await trainLoop(model, weights, batcher, hyper, { threads: 1 });
  return { model, losses, weights };
}

/** max |a − b| / max |b| over every weight. */
function relativeDifference(trained: Map<string, { data: Float32Array }>, reference: Map<string, tf.Variable>): number {
  expect([...trained.keys()].sort()).toEqual([...reference.keys()].sort());
  let diff = 0;
  let scale = 0;
  for (const [name, v] of reference) {
    const ref = v.dataSync() as Float32Array;
    const got = trained.get(name)!.data;
    for (let k = 0; k < ref.length; k++) {
      diff = Math.max(diff, Math.abs(got[k] - ref[k]));
      scale = Math.max(scale, Math.abs(ref[k]));
    }
  }
  expect(scale).toBeGreaterThan(0);
  return diff / scale;
}

describe('pipeline-parallel training across worker processes', () => {
  it("the owner's full fine-tuning over 3 stages = single process (same seed), then scored on the stages", async () => {
    const run = await runPipelineTraining({ queue: pool.queue, model: LLAMA_24L, storageDir: pool.storage, task: 'moby', dataRoot: DATA_ROOT, trainable: 'all', hyper: HYPER, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, evaluate: { maxBlocks: EVAL_BLOCKS, batchSize: EVAL_BLOCKS } });
    const single = await singleProcess(() => true);
    try {
      expect(run.plan.stages).toHaveLength(3);
      expect(run.train.losses).toHaveLength(3);
      // Same ops on the same values; float summation order only: 1e-5 on losses, 1e-5 relative on weights.
      run.train.losses.forEach((l, k) => expect(Math.abs(l - single.losses[k])).toBeLessThan(1e-5));
      expect(relativeDifference(run.weights, single.weights)).toBeLessThan(1e-5);
      const task = await resolveTask('moby', DATA_ROOT);
      const reference = await evaluateModel(single.model, task, await Tokenizer.fromDir(LLAMA_24L), { maxBlocks: EVAL_BLOCKS, batchSize: EVAL_BLOCKS });
      expect(Math.abs(run.evaluation!.value - reference.value) / reference.value).toBeLessThan(1e-5);
    } finally {
      single.model.dispose();
    }
  });

  it('adapter tuning over 3 stages survives kill -9 of the middle stage mid-step: same weights as single process', async () => {
    const loaded = pool.workers.map((w) => w.logs.filter((r) => r.msg === 'pipeline stage loaded').length);
    let killed: number | undefined;
    const run = await runPipelineTraining({
      queue: pool.queue, model: LLAMA_24L, storageDir: pool.storage, task: 'moby', dataRoot: DATA_ROOT, trainable: { blocks: ADAPTERS }, hyper: HYPER, budgets: [budget, budget, budget], plan: PIPELINE_PLAN,
      onStep: (info) => {
        if (info.step !== 1) return;
        const newest = (w: (typeof pool.workers)[number]) => w.logs.filter((r) => r.msg === 'pipeline stage loaded');
        const victim = pool.workers.find((w, i) => newest(w).length > loaded[i] && newest(w).at(-1)!.stage === 1)!;
        // Half a step into step 2: its micro-batches are in flight through the stages.
        setTimeout(() => {
          killed = victim.pid;
          victim.proc.kill('SIGKILL');
        }, (info.seconds * 1000) / 2);
      },
    });
    const single = await singleProcess((name) => ADAPTERS.includes(Number(/^model\.layers\.(\d+)\./.exec(name)?.[1] ?? -1)));
    try {
      expect(killed).toBeDefined();
      expect(run.attempts).toBe(2);
      expect(run.weights.size).toBe(single.weights.size);
      run.train.losses.forEach((l, k) => expect(Math.abs(l - single.losses[k])).toBeLessThan(1e-5));
      expect(relativeDifference(run.weights, single.weights)).toBeLessThan(1e-5);
    } finally {
      single.model.dispose();
    }
  });

  it("a data owner's adapter tuning on an emulator over 3 stages = single process: adapter artifact and emulator score", async () => {
    const { outDir: emulatorDir } = await buildScaleotEmulator({ modelDir: LLAMA_24L, outDir: join(scratch, 'emulator'), alpha: 0, beta: 0.5, srcStorage: 'factors' });
    const adapterDir = join(scratch, 'adapter');
    const run = await runPipelineTraining({ queue: pool.queue, model: emulatorDir, storageDir: pool.storage, task: 'moby', dataRoot: DATA_ROOT, trainable: 'adapters', hyper: HYPER, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, evaluate: { maxBlocks: EVAL_BLOCKS, batchSize: EVAL_BLOCKS }, adapterOutDir: adapterDir });
    const emu = await loadEmulator(emulatorDir);
    try {
      const task = await resolveTask('moby', DATA_ROOT);
      const tokenizer = await Tokenizer.fromDir(emulatorDir);
      const single = await tuneAdapterInMemory(emu, task, tokenizer, { ...DEFAULT_TRAIN, ...HYPER }, null, { threads: 1 });
      expect(run.plan.stages).toHaveLength(3);
      run.train.losses.forEach((l, k) => expect(Math.abs(l - single.train.losses[k])).toBeLessThan(1e-5));
      // The artifact `scaleot tune` would write, with the single-process weights.
      const stored = await readAdapter(adapterDir);
      expect(relativeDifference(stored.tensors, adapterWeights(emu) as Map<string, tf.Variable>)).toBeLessThan(1e-5);
      const score = await evaluateModel(emu.model, task, tokenizer, { maxBlocks: EVAL_BLOCKS, batchSize: EVAL_BLOCKS });
      expect(Math.abs(run.evaluation!.value - score.value) / score.value).toBeLessThan(1e-5);
    } finally {
      emu.model.dispose();
    }
  });
});
