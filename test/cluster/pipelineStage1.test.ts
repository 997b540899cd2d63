import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipelineStage1, type PipelineStage1Result } from '@scaleot/cluster';
import { useBackend } from '@scaleot/model';
import { corpusStreams, readStage1, runStage1, type Stage1Result } from '@scaleot/scaleot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, expectSameHarmonizers, TINY_STAGE1 } from './helpers.js';
import { LLAMA_24L, PIPELINE_PLAN, pipelineBudget, startWorkerPool, type WorkerPool } from './pipelineHelpers.js';

// Stage 1 of sotu-llama-24l split over 3 real worker processes (each may hold about 45% of the model):
// harmonizer gradients flow backward stage to stage over ZeroMQ, the rollouts' candidates forward, and
// the run equals the single-process run with the same seed. A fourth worker stands by for the drill:
// kill -9 of the middle stage mid-step, and the step runs again under a new plan with the same result.
let pool: WorkerPool;
let scratch: string;
let streams: { train: Int32Array; val: Int32Array };
let reference: Stage1Result;
let referenceHarmonizers: Map<string, { data: Float32Array }>;
let budget: number;

beforeAll(async () => {
  pool = await startWorkerPool('pipestage1', 4, { SCALEOT_JOB_LOCK_MS: '5000', SCALEOT_STALLED_INTERVAL_MS: '2000' });
  await useBackend('wasm');
  scratch = await mkdtemp(join(tmpdir(), 'scaleot-pipestage1-'));
  streams = await corpusStreams('sotu', DATA_ROOT, LLAMA_24L, 6);
  reference = await runStage1({ modelDir: LLAMA_24L, outDir: join(scratch, 'reference'), streams, ...TINY_STAGE1 });
  referenceHarmonizers = (await readStage1(join(scratch, 'reference'))).harmonizers;
  budget = await pipelineBudget(LLAMA_24L, 0.45);
});

afterAll(async () => {
  await pool?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function expectSameAsReference(result: PipelineStage1Result): Promise<void> {
  expect(result.completed).toBe(true);
  expect(result.steps).toBe(reference.steps);
  expect(result.plan.stages).toHaveLength(3);
  // The same draws: masks and candidates agree exactly.
  expect(result.log.map((e) => e.replaced)).toEqual(reference.log.map((e) => e.replaced));
  expect(result.log.map((e) => e.rollouts?.replaced)).toEqual(reference.log.map((e) => e.rollouts?.replaced));
  // The stages run the single-process ops on the same values; only float summation order may differ
  // (alignment shares added across stages): 1e-5 on losses and scores, 1e-5 relative on harmonizers
  // (measured on the wasm backend: identical harmonizers, max |Δ| = 0).
  result.log.forEach((e, k) => {
    expect(Math.abs(e.loss - reference.log[k].loss)).toBeLessThan(1e-5);
    expect(Math.abs(e.align - reference.log[k].align)).toBeLessThan(1e-5);
    expect(Math.abs(e.gradNorm - reference.log[k].gradNorm) / reference.log[k].gradNorm).toBeLessThan(1e-4);
    e.rollouts!.losses.forEach((l, j) => expect(Math.abs(l - reference.log[k].rollouts!.losses[j])).toBeLessThan(1e-5));
  });
  for (let i = 0; i < reference.scores.length; i++) expect(Math.abs(result.scores[i] - reference.scores[i])).toBeLessThan(1e-5);
  const harmonizers = (await readStage1(result.outDir)).harmonizers;
  expectSameHarmonizers(harmonizers, referenceHarmonizers, 1e-5);
}

describe('pipeline-parallel stage 1 across worker processes', () => {
  it('3 stages give the single-process stage 1 (same seed): losses, rollouts, scores and harmonizers', async () => {
    const result = await runPipelineStage1({ modelDir: LLAMA_24L, outDir: join(scratch, 'pipeline'), storageDir: pool.storage, streams, queue: pool.queue, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, ...TINY_STAGE1 });
    expect(result.attempts).toBe(1);
    await expectSameAsReference(result);
    // Three distinct workers held the stages.
    const pids = new Set(pool.workers.filter((w) => w.logs.some((r) => r.msg === 'pipeline stage loaded')).map((w) => w.pid));
    expect(pids.size).toBe(3);
  });

  it('kill -9 of the middle stage mid-step: the step runs again under a new plan, same result', async () => {
    const loaded = pool.workers.map((w) => w.logs.filter((r) => r.msg === 'pipeline stage loaded').length);
    let killed: number | undefined;
    const result = await runPipelineStage1({
      modelDir: LLAMA_24L, outDir: join(scratch, 'killed'), storageDir: pool.storage, streams, queue: pool.queue, budgets: [budget, budget, budget], plan: PIPELINE_PLAN, ...TINY_STAGE1,
      onStep: (entry) => {
        if (entry.step !== 1) return;
        // The middle stage of this run (its "loaded" record is the newest one with stage 1).
        const victim = pool.workers.find((w, i) => w.logs.filter((r) => r.msg === 'pipeline stage loaded').length > loaded[i] && w.logs.filter((r) => r.msg === 'pipeline stage loaded').at(-1)!.stage === 1)!;
        // Half a step into step 2: its micro-batches are in flight through the stages.
        setTimeout(() => {
          killed = victim.pid;
          victim.proc.kill('SIGKILL');
        }, (entry.seconds * 1000) / 2);
      },
    });
    expect(killed).toBeDefined();
    expect(result.attempts).toBe(2);
    await expectSameAsReference(result);
  });
});
