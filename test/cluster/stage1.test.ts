import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@scaleot/backend';
import { runDistributedStage1, type DistributedStage1Result } from '@scaleot/cluster';
import { JobQueue } from '@scaleot/queue';
import { corpusStreams, readStage1, runStage1, type Stage1Result } from '@scaleot/scaleot';
import { ParameterPublisher, ResultCollector } from '@scaleot/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, spawnApp, stopProcess, TINY_STAGE1, uniquePrefix, expectSameHarmonizers, type SpawnedProcess } from './helpers.js';

// Distributed stage 1 on two worker processes against the single-process trainer (same seed), plus
// the two failure drills: kill -9 of a worker mid-round, and a coordinator that dies mid-round and
// restarts from its checkpoint.
const prefix = uniquePrefix('stage1');
let storage: string;
let streams: { train: Int32Array; val: Int32Array };
let reference: Stage1Result;
let referenceHarmonizers: Map<string, { data: Float32Array }>;
let queue: JobQueue;
const workers: SpawnedProcess[] = [];

const workerEnv = () => ({
  SCALEOT_REDIS_URL: REDIS_URL,
  SCALEOT_QUEUE_PREFIX: prefix,
  SCALEOT_STORAGE_DIR: storage,
  SCALEOT_METRICS_PORT: '0',
  SCALEOT_JOB_LOCK_MS: '4000',
  SCALEOT_STALLED_INTERVAL_MS: '2000',
  SCALEOT_BACKEND: 'wasm',
});

function expectSameAsReference(result: DistributedStage1Result, harmonizers: Map<string, { data: Float32Array }>) {
  expect(result.completed).toBe(true);
  expect(result.steps).toBe(reference.steps);
  // Masks are drawn from the same generators: the replaced blocks of every step agree exactly.
  expect(result.log.map((e) => e.replaced)).toEqual(reference.log.map((e) => e.replaced));
  expect(result.log.map((e) => e.rollouts?.replaced)).toEqual(reference.log.map((e) => e.rollouts?.replaced));
  // Shard gradients are summed in another order than the trainer's micro-batches: float32 tolerance.
  for (let i = 0; i < reference.scores.length; i++) expect(Math.abs(result.scores[i] - reference.scores[i])).toBeLessThan(1e-4);
  result.log.forEach((e, k) => {
    expect(e.loss).toBeCloseTo(reference.log[k].loss, 4);
    e.rollouts!.losses.forEach((l, j) => expect(l).toBeCloseTo(reference.log[k].rollouts!.losses[j], 4));
  });
  expectSameHarmonizers(harmonizers, referenceHarmonizers, 1e-4);
}

beforeAll(async () => {
  await initBackend('wasm');
  storage = await mkdtemp(join(tmpdir(), 'scaleot-cluster-stage1-'));
  for (let i = 0; i < 2; i++) workers.push(spawnApp('worker', workerEnv()));
  streams = await corpusStreams('sotu', DATA_ROOT, MODEL_DIR, 6);
  reference = await runStage1({ modelDir: MODEL_DIR, outDir: join(storage, 'reference'), streams, ...TINY_STAGE1 });
  referenceHarmonizers = (await readStage1(join(storage, 'reference'))).harmonizers;
  queue = new JobQueue({ connection: REDIS_URL, prefix });
  await Promise.all(workers.map((w) => w.waitForLog('worker ready', 90_000)));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => stopProcess(w)));
  for (const name of ['scaleot', 'scaleot-control']) {
    const q = new JobQueue({ name, connection: REDIS_URL, prefix });
    await q.obliterate().catch(() => undefined);
    await q.close();
  }
  await queue?.close();
  await rm(storage, { recursive: true, force: true });
});

describe('distributed stage 1', () => {
  it('gives the single-process trainer\'s scores and harmonizers on two worker processes', async () => {
    const outDir = join(storage, 'distributed');
    const result = await runDistributedStage1({ modelDir: MODEL_DIR, outDir, storageDir: storage, streams, queue, connection: REDIS_URL, shards: 2, runId: 'eq', ...TINY_STAGE1 });
    expectSameAsReference(result, (await readStage1(outDir)).harmonizers);
    expect(result.timings.length).toBe(TINY_STAGE1.steps);
    // Both worker processes did shard work.
    const shardWorkers = workers.filter((w) => w.logs.some((r) => r.msg === 'job completed' && r.kind === 'stage1.shard'));
    expect(shardWorkers.length).toBe(2);
  });

  it('survives kill -9 of a worker in the middle of a round with the same scores', async () => {
    const outDir = join(storage, 'killed');
    let killed: number | undefined;
    let killedJob: string | undefined;
    let armed = false;
    const hunter = setInterval(() => {
      if (!armed || killed !== undefined) return;
      void queue.queue.getJobs(['active']).then((jobs) => {
        const shard = jobs.find((j) => j?.name === 'stage1.shard' && (j.progress as { pid?: number })?.pid);
        const victim = shard ? workers.find((w) => w.pid === (shard.progress as { pid: number }).pid) : undefined;
        if (victim && killed === undefined) {
          killed = victim.pid;
          killedJob = shard!.id;
          victim.proc.kill('SIGKILL');
        }
      });
    }, 25);
    try {
      const result = await runDistributedStage1({
        modelDir: MODEL_DIR, outDir, storageDir: storage, streams, queue, connection: REDIS_URL, shards: 2, runId: 'kill', ...TINY_STAGE1,
        onStep: (entry) => { if (entry.step === 1) armed = true; },
      });
      expect(killed).toBeDefined();
      // The killed worker's shard was picked up again by the survivor and completed there.
      const rerun = await queue.queue.getJob(killedJob!);
      expect(await rerun!.getState()).toBe('completed');
      expect(rerun!.returnvalue.stale).toBeUndefined();
      expect(rerun!.returnvalue.bytes).toBeGreaterThan(0);
      expect(workers.find((w) => w.pid !== killed)!.logs.some((r) => r.msg === 'job completed' && r.job === killedJob)).toBe(true);
      expectSameAsReference(result, (await readStage1(outDir)).harmonizers);
    } finally {
      clearInterval(hunter);
    }
    // Back to two workers for the next drill.
    const replacement = spawnApp('worker', workerEnv());
    workers.splice(workers.findIndex((w) => w.pid === killed), 1, replacement);
    await replacement.waitForLog('worker ready', 90_000);
  });

  it('resumes from the last completed round after the coordinator dies mid-round', async () => {
    const outDir = join(storage, 'restarted');
    // One address pair across both incarnations, as the deployed coordinator rebinds 5555/5556.
    const publisher = await ParameterPublisher.open();
    const collector = await ResultCollector.open();
    const common = { modelDir: MODEL_DIR, outDir, storageDir: storage, streams, queue, connection: REDIS_URL, shards: 2, runId: 'restart', publisher, collector, ...TINY_STAGE1 };
    try {
      const abort = new AbortController();
      const first = runDistributedStage1({ ...common, signal: abort.signal, onStep: (entry) => { if (entry.step === 1) setTimeout(() => abort.abort(), 50); } });
      await expect(first).rejects.toThrow(/aborted/);
      const second = await runDistributedStage1(common);
      expect(second.resumedFrom).toBeGreaterThanOrEqual(1);
      expect(second.resumedFrom).toBeLessThan(TINY_STAGE1.steps);
      expect(second.epoch).toBe(2);
      expectSameAsReference(second, (await readStage1(outDir)).harmonizers);
    } finally {
      await publisher.close();
      await collector.close();
    }
  });
});
