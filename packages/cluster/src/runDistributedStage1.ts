import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { atomicWriteJson, createLogger, Progress, type Logger } from '@scaleot/core';
import { Rng } from '@scaleot/data';
import { readModelConfig, warmupCosine } from '@scaleot/model';
import { sourceModelInfo } from '@scaleot/offsite';
import { JobQueue, JobWorker, type FlowSpec, type RedisConnection } from '@scaleot/queue';
import {
  applyHarmonizerUpdate,
  corpusStreams,
  Harmonizer,
  HarmonizerOptimizer,
  hasStage1State,
  initialStage1State,
  loadStage1State,
  readStage1,
  reinforceUpdate,
  resolveStage1Hyper,
  sampleGroupedMask,
  saveStage1State,
  STAGE1_LOG,
  STAGE1_MANIFEST,
  writeStage1Artifacts,
  type Stage1HyperParameters,
  type Stage1Result,
  type Stage1StepLog,
} from '@scaleot/scaleot';
import { createTensor, ParameterPublisher, ResultCollector, TensorSet, TransportError, type JsonValue } from '@scaleot/transport';
import * as tf from '@tensorflow/tfjs';
import { Job, type Queue } from 'bullmq';
import { ClusterError } from './ClusterError.js';
import { CLUSTER_STAGE1_STATE, type ClusterStage1State } from './stage1Checkpoint.js';
import { decodeVersion, paramsVersion, shardResultKey, type RolloutJobResult, type ShardResultMeta, type Stage1ParamsMeta } from './stage1Protocol.js';
import { randomWindowStarts, writeTokenStream } from './tokenStreams.js';

/** Timing of one round, split the way the round-overhead benchmark needs it. */
export interface RoundTiming {
  round: number;
  /** Wall-clock of the round: publish to checkpoint. */
  seconds: number;
  /**
   * The critical path of the work itself: the longest shard, then the rollouts scheduled on the
   * workers with no overhead at all (longest-first makespan: 3 candidates on 2 workers take two waves).
   */
  computeSeconds: number;
  /** Gradient summation + optimizer update + reinforce (coordinator side). */
  aggregateSeconds: number;
  checkpointSeconds: number;
}

export interface DistributedStage1Options extends Partial<Stage1HyperParameters> {
  /** The full model (HF dir), readable by every worker under the same path (or relative to storageDir). */
  modelDir: string;
  /** Stage-1 artifact directory (same files as runStage1 writes). */
  outDir: string;
  /** Shared storage for the round data (token streams). */
  storageDir: string;
  /** Names the run in job payloads, result keys and storage. Default: derived from outDir. */
  runId?: string;
  /** Pre-tokenised streams (else `corpus` is tokenised). */
  streams?: { train: Int32Array; val: Int32Array };
  /** LM corpus. Default 'sotu'. */
  corpus?: string;
  dataRoot?: string;
  maxDocuments?: number;
  /** Queue the shard jobs (and, without `rolloutQueue`, the rollout jobs) go to (its workers run the Stage1WorkerRuntime handlers). */
  queue: JobQueue;
  /** Queue of the rollout jobs when they are routed elsewhere (SCALEOT_JOB_ROUTES). Default `queue`. */
  rolloutQueue?: JobQueue;
  /** Redis of the control queue (the round parents, processed here). Default: SCALEOT_REDIS_URL. */
  connection?: RedisConnection;
  /** Shard jobs per round (data-parallel slices, cut on micro-batch boundaries). Default 2. */
  shards?: number;
  /** Bound parameter publisher and result collector (the app binds 5555/5556). Default: fresh ones on 127.0.0.1. */
  publisher?: ParameterPublisher;
  collector?: ResultCollector;
  /** Addresses workers reach them at (payload `paramsAddress` / `resultAddress`). Default: their bound addresses. */
  paramsAddress?: string;
  resultAddress?: string;
  /** Default `<outDir>/checkpoint`. */
  checkpointDir?: string;
  /** Continue from the checkpoint. Default true. */
  resume?: boolean;
  /** End after this many completed rounds (the checkpoint holds the state). Default: all. */
  stopAfterRound?: number;
  /** Priority of shard and rollout jobs (lower first; shards go before rollouts). Default 5. */
  priority?: number;
  onStep?: (entry: Stage1StepLog, timing: RoundTiming) => void;
  /** Stops the run where it is (jobs in flight stay behind, as after a crash); the call rejects. */
  signal?: AbortSignal;
  logger?: Logger;
}

/** The single-process result plus the coordinator's epoch and per-round timings. */
export interface DistributedStage1Result extends Stage1Result {
  epoch: number;
  timings: RoundTiming[];
}

const EPOCH_FILE = 'coordinator-epoch.json';

/**
 * ScaleOT stage 1 as synchronous rounds over a cluster. Each round (= one trainer step) the coordinator
 * draws the step's mask, batch windows and candidate masks from the same seeded generators as
 * runStage1, publishes the harmonizers (phase 0), enqueues one flow (a `stage1.round` parent over the
 * shard and rollout jobs), sums the shards' gradients (each normalised by the whole batch's token count,
 * so they add up to the full-batch gradient), applies the trainer's update, publishes the updated
 * harmonizers (phase 1) for the rollouts, applies the reinforce update to their losses and checkpoints.
 * Same seed, same scores and harmonizers as runStage1, up to float summation order.
 */
export async function runDistributedStage1(opts: DistributedStage1Options): Promise<DistributedStage1Result> {
  const started = performance.now();
  const log = opts.logger ?? createLogger('cluster.stage1');
  const outDir = resolve(opts.outDir);
  const modelDir = resolve(opts.modelDir);
  const checkpointDir = resolve(opts.checkpointDir ?? join(outDir, 'checkpoint'));
  const runId = opts.runId ?? `stage1-${outDir.split('/').filter(Boolean).slice(-2).join('-').replace(/[^A-Za-z0-9._-]/g, '_')}`;

  if (existsSync(join(outDir, STAGE1_MANIFEST))) {
    const done = await readStage1(outDir);
    log.info({ outDir }, 'stage 1 already completed here; reusing it');
    const logLines = existsSync(join(outDir, STAGE1_LOG)) ? (await readFile(join(outDir, STAGE1_LOG), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Stage1StepLog) : [];
    return { completed: true, outDir, manifest: done.manifest, scores: done.scores, log: logLines, steps: done.manifest.steps, resumedFrom: done.manifest.steps, epoch: 0, timings: [], seconds: 0 };
  }

  const source = await sourceModelInfo(modelDir);
  const modelConfig = await readModelConfig(modelDir);
  const eps = modelConfig.normEps;
  const { hyper, layout } = resolveStage1Hyper(opts, modelConfig);
  const streams = opts.streams ?? (await corpusStreams(opts.corpus ?? 'sotu', opts.dataRoot, modelDir, opts.maxDocuments));
  for (const [name, s] of Object.entries(streams)) {
    if (s.length < hyper.seqLen + 2) throw new ClusterError('EMPTY_DATASET', `the ${name} stream has ${s.length} tokens; a window needs seqLen + 1 = ${hyper.seqLen + 1}`, { where: 'stage1 corpus' });
  }
  const fingerprint = { source: source.sha256, hyper, streams: { train: streams.train.length, val: streams.val.length } };

  // Round data lives in shared storage; payloads name windows of it.
  const dataDir = join(resolve(opts.storageDir), 'stage1-data', runId);
  const trainRef = join(dataDir, 'train.i32');
  const valRef = join(dataDir, 'val.i32');
  await writeTokenStream(trainRef, streams.train);
  await writeTokenStream(valRef, streams.val);

  const epochPath = join(outDir, EPOCH_FILE);
  const previousEpoch = existsSync(epochPath) ? (JSON.parse(await readFile(epochPath, 'utf8')) as { epoch: number }).epoch : 0;
  const epoch = previousEpoch + 1;
  await atomicWriteJson(epochPath, { epoch, startedAt: new Date().toISOString(), pid: process.pid });

  const ownPublisher = !opts.publisher;
  const ownCollector = !opts.collector;
  const publisher = opts.publisher ?? (await ParameterPublisher.open({ logger: log }));
  const collector = opts.collector ?? (await ResultCollector.open({ logger: log }));
  const paramsAddress = opts.paramsAddress ?? publisher.address;
  const resultAddress = opts.resultAddress ?? collector.address;
  const controlName = `${opts.queue.name}-control`;
  const controlQueue = new JobQueue({ name: controlName, prefix: opts.queue.prefix, connection: opts.connection });
  const roundWaiters = new Map<string, { resolve: (v: Record<string, unknown>) => void }>();
  const control = new JobWorker({
    queue: controlName,
    prefix: opts.queue.prefix,
    connection: opts.connection,
    logger: log,
    handlers: {
      'stage1.round': async (_payload, context) => {
        const values = await context.childrenValues<unknown>();
        roundWaiters.get(String(context.job.id))?.resolve(values);
        return { children: Object.keys(values).length };
      },
    },
  });

  const harmonizers = new Map<number, Harmonizer>();
  let optimizer: HarmonizerOptimizer | undefined;
  try {
    await control.waitUntilReady();
    await removeStaleRounds([...new Set([controlQueue.queue, opts.queue.queue, (opts.rolloutQueue ?? opts.queue).queue])], runId, epoch, log);
    for (const i of layout.middle) harmonizers.set(i, new Harmonizer(i, modelConfig.hiddenSize, { rank: hyper.rank, eps, seed: hyper.seed, initStd: hyper.initStd }));
    optimizer = new HarmonizerOptimizer(harmonizers, { weightDecay: hyper.weightDecay });

    let state: ClusterStage1State = initialStage1State(hyper.seed, source.nLayer);
    if ((opts.resume ?? true) && hasStage1State(checkpointDir)) {
      state = await loadStage1State(checkpointDir, fingerprint, harmonizers, optimizer, CLUSTER_STAGE1_STATE);
      log.info({ round: state.step, epoch }, 'resuming stage 1 from the last completed round');
    }
    const resumedFrom = state.step;
    const maskRng = new Rng(state.rng.mask);
    const trainRng = new Rng(state.rng.train);
    const valRng = new Rng(state.rng.val);
    let scores = state.scores;
    const stepLog = state.log;
    const timings: RoundTiming[] = [];
    const schedule = warmupCosine({ warmupSteps: Math.min(hyper.warmupSteps, hyper.steps), totalSteps: hyper.steps, peakLr: hyper.lr, finalLrFraction: hyper.finalLrFraction });
    const last = Math.min(hyper.steps, opts.stopAfterRound ?? hyper.steps);
    const progress = new Progress({ total: hyper.steps, unit: 'round', label: 'stage1', logger: log });
    if (resumedFrom > 0) progress.tick(resumedFrom);
    const middleScores = () => Object.fromEntries(layout.middle.map((i) => [String(i), scores[i]]));
    const replacedOf = (mask: number[]) => layout.middle.filter((i) => mask[i] === 0);
    const runStarted = performance.now();
    const shardSlices = sliceRows(hyper.batchSize, hyper.microBatchSize, opts.shards ?? 2);
    const priority = opts.priority ?? 5;

    const publishParams = async (version: number, round: number, phase: 0 | 1, mask: number[]) => {
      const tensors = new TensorSet();
      for (const h of harmonizers.values()) for (const [name, v] of h.namedVariables()) tensors.set(name, createTensor((await v.data()) as Float32Array, v.shape));
      const meta: Stage1ParamsMeta = {
        runId, round, phase, model: modelDir, middle: layout.middle, rank: hyper.rank, eps, mask,
        tokens: hyper.batchSize * hyper.seqLen, rows: hyper.batchSize, microBatchSize: hyper.microBatchSize, alignWeight: hyper.alignWeight,
      };
      await publisher.publish(version, tensors, { meta: meta as unknown as JsonValue });
    };

    for (let step = resumedFrom; step < last; step++) {
      const t0 = performance.now();
      const lr = schedule(step);
      const mask = sampleGroupedMask(scores, layout.groups, maskRng, { keepFraction: hyper.keepFraction });
      const trainStarts = randomWindowStarts(streams.train.length, hyper.seqLen, hyper.batchSize, trainRng);
      const doRl = (step + 1) % hyper.rlEvery === 0;
      const valStarts = doRl ? randomWindowStarts(streams.val.length, hyper.seqLen, hyper.rlBatchSize, valRng) : [];
      const candidates = doRl ? Array.from({ length: hyper.candidates }, () => sampleGroupedMask(scores, layout.groups, maskRng, { keepFraction: hyper.keepFraction })) : [];
      const v0 = paramsVersion(epoch, step, 0);
      const v1 = paramsVersion(epoch, step, 1);
      await publishParams(v0, step, 0, mask);

      const windowLength = hyper.seqLen + 1;
      const children: FlowSpec[] = shardSlices.map(([from, to], shardIndex) => ({
        kind: 'stage1.shard',
        payload: { runId, round: step, shardIndex, shardCount: shardSlices.length, batch: { type: 'windows', dataset: trainRef, windowIndices: trainStarts.slice(from, to), windowLength }, paramsVersion: v0, paramsAddress, resultAddress },
        options: { priority, attempts: 5, backoff: { type: 'fixed', delay: 200 } },
      }));
      candidates.forEach((candidate, candidateIndex) =>
        children.push({
          kind: 'stage1.rollout',
          queueName: (opts.rolloutQueue ?? opts.queue).name,
          payload: { runId, round: step, candidateIndex, mask: candidate as (0 | 1)[], paramsVersion: v1, batch: { type: 'windows', dataset: valRef, windowIndices: valStarts, windowLength }, paramsAddress, resultAddress },
          options: { priority: priority + 1, attempts: 5, backoff: { type: 'fixed', delay: 200 } },
        }),
      );
      let resolveRound!: (values: Record<string, unknown>) => void;
      const roundDone = new Promise<Record<string, unknown>>((r) => (resolveRound = r));
      const node = await opts.queue.addFlow({
        kind: 'stage1.round',
        queueName: controlName,
        payload: { runId, round: step, paramsVersion: v0, shardCount: shardSlices.length, candidateCount: Math.max(1, candidates.length) },
        options: { priority: 1, attempts: 1 },
        children,
      });
      const parentId = String(node.job.id);
      roundWaiters.set(parentId, { resolve: resolveRound });
      const failure = watchParent(controlQueue.queue, parentId, opts.signal);

      try {
        // Gradients over ZeroMQ.
        const keys = shardSlices.map((_, i) => shardResultKey(runId, v0, i));
        const collected = await Promise.race([collectAll(collector, keys), failure.promise]);
        const aggStarted = performance.now();
        let nllSum = 0;
        let alignSum = 0;
        let shardCompute = 0;
        const sums = new Map<string, { shape: number[]; data: Float32Array }>();
        for (const key of keys) {
          const result = collected.get(JSON.stringify([key.runId, key.round, key.jobId]))!;
          const meta = result.meta as unknown as ShardResultMeta;
          nllSum += meta.nllSum;
          alignSum += meta.alignSum;
          shardCompute = Math.max(shardCompute, meta.computeSeconds ?? 0);
          for (const [name, tensor] of result.tensors) {
            const data = tensor.data as Float32Array;
            const acc = sums.get(name);
            if (!acc) sums.set(name, { shape: [...tensor.shape], data: Float32Array.from(data) });
            else for (let k = 0; k < data.length; k++) acc.data[k] += data[k];
          }
        }
        const grads = new Map<string, tf.Tensor>();
        for (const [name, { shape, data }] of sums) grads.set(name, tf.tensor(data, shape, 'float32'));
        let gradNorm: number;
        try {
          gradNorm = applyHarmonizerUpdate(optimizer, grads, lr, hyper.gradClip).gradNorm;
        } finally {
          tf.dispose([...grads.values()]);
        }
        let aggregateSeconds = (performance.now() - aggStarted) / 1000;
        const tokens = hyper.batchSize * hyper.seqLen;
        const entry: Stage1StepLog = { step: step + 1, loss: nllSum / tokens, align: alignSum / hyper.batchSize, lr, gradNorm, replaced: replacedOf(mask), scores: {}, seconds: 0 };
        if (doRl) await publishParams(v1, step, 1, mask);
        const values = await Promise.race([roundDone, failure.promise]);
        const rolloutSeconds: number[] = [];
        if (doRl) {
          const losses = new Array<number>(candidates.length).fill(Number.NaN);
          for (const value of Object.values(values)) {
            const r = value as RolloutJobResult;
            if (r && typeof r === 'object' && 'candidateIndex' in r && r.version === v1 && typeof r.loss === 'number') {
              losses[r.candidateIndex] = r.loss;
              rolloutSeconds.push(r.computeSeconds ?? 0);
            }
          }
          if (!losses.every(Number.isFinite)) throw new ClusterError('ROUND_FAILED', `round ${step}: rollout losses missing (${losses.join(', ')})`, { where: runId, unrecoverable: false });
          const rlStarted = performance.now();
          const update = reinforceUpdate(scores, candidates, losses, layout.groups, { eta: hyper.eta, clamp: hyper.scoreClamp, eps: hyper.advantageEps });
          scores = update.scores;
          entry.rollouts = { replaced: candidates.map(replacedOf), losses, advantages: update.advantages };
          aggregateSeconds += (performance.now() - rlStarted) / 1000;
        }
        entry.scores = middleScores();
        entry.seconds = (performance.now() - t0) / 1000;
        stepLog.push(entry);
        const cpStarted = performance.now();
        await saveStage1State(checkpointDir, fingerprint, {
          step: step + 1,
          scores,
          rng: { mask: maskRng.state, train: trainRng.state, val: valRng.state },
          log: stepLog,
          seconds: state.seconds + (performance.now() - runStarted) / 1000,
        }, harmonizers, optimizer, CLUSTER_STAGE1_STATE);
        const timing: RoundTiming = {
          round: step,
          seconds: (performance.now() - t0) / 1000,
          computeSeconds: shardCompute + makespan(rolloutSeconds, shardSlices.length),
          aggregateSeconds,
          checkpointSeconds: (performance.now() - cpStarted) / 1000,
        };
        timings.push(timing);
        opts.onStep?.(entry, timing);
        progress.tick(1, { loss: entry.loss });
      } finally {
        failure.stop();
        roundWaiters.delete(parentId);
      }
    }

    const seconds = state.seconds + (performance.now() - runStarted) / 1000;
    const steps = Math.max(last, resumedFrom);
    if (steps < hyper.steps) {
      return { completed: false, outDir, scores, log: stepLog, steps, resumedFrom, epoch, timings, seconds: (performance.now() - started) / 1000 };
    }
    const manifest = await writeStage1Artifacts({
      outDir, source, layout, hyper, hyperParameters: { ...hyper, distributed: { shards: shardSlices.length, runId } }, steps, scores, harmonizers, log: stepLog, seconds,
    });
    return { completed: true, outDir, manifest, scores, log: stepLog, steps, resumedFrom, epoch, timings, seconds: (performance.now() - started) / 1000 };
  } finally {
    optimizer?.dispose();
    for (const h of harmonizers.values()) h.dispose();
    await control.close();
    await controlQueue.close();
    if (ownPublisher) await publisher.close();
    if (ownCollector) await collector.close();
  }
}

/** [from, to) row ranges of `shards` slices of a batch, cut on micro-batch boundaries; empty slices dropped. */
export function sliceRows(rows: number, microBatchSize: number, shards: number): [number, number][] {
  if (!Number.isInteger(shards) || shards < 1) throw new ClusterError('BAD_OPTION', `shards must be a positive integer, got ${shards}`, { where: 'stage1.shards' });
  const mb = Math.max(1, Math.floor(microBatchSize));
  const microBatches = Math.ceil(rows / mb);
  const out: [number, number][] = [];
  for (let s = 0; s < shards; s++) {
    const from = Math.floor((s * microBatches) / shards) * mb;
    const to = Math.min(rows, Math.floor(((s + 1) * microBatches) / shards) * mb);
    if (to > from) out.push([from, to]);
  }
  return out;
}

async function collectAll(collector: ResultCollector, keys: { runId: string; round: number; jobId: string }[]) {
  for (;;) {
    try {
      return (await collector.collect(keys, { timeoutMs: 60_000 })).results;
    } catch (error) {
      if (error instanceof TransportError && error.code === 'TIMEOUT') continue;
      throw error;
    }
  }
}

/** Rejects once the round's parent failed for good (a child ran out of attempts or was invalid). */
function watchParent(queue: Queue, parentId: string, signal?: AbortSignal): { promise: Promise<never>; stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let onAbort: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(new ClusterError('ABORTED', 'the stage-1 run was aborted', { where: `round job ${parentId}`, unrecoverable: false }));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const check = async () => {
      if (stopped) return;
      try {
        if ((await queue.getJobState(parentId)) === 'failed') {
          // Fetched after the state says failed, so failedReason is the final one.
          const job = await Job.fromId(queue, parentId);
          reject(new ClusterError('ROUND_FAILED', `the round's jobs failed for good: ${job?.failedReason ?? 'unknown reason'}`, { where: `round job ${parentId}`, unrecoverable: false }));
          return;
        }
      } catch {
        // Redis hiccup: look again next time.
      }
      if (!stopped) timer = setTimeout(() => void check(), 1000);
    };
    timer = setTimeout(() => void check(), 1000);
  });
  promise.catch(() => undefined);
  return {
    promise,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** Removes queued jobs and round parents of this run left by an earlier coordinator incarnation. */
async function removeStaleRounds(queues: Queue[], runId: string, epoch: number, log: Logger): Promise<void> {
  let removed = 0;
  for (const queue of queues) {
    for (const job of await queue.getJobs(['waiting', 'prioritized', 'delayed', 'waiting-children'])) {
      const data = job?.data as { runId?: string; paramsVersion?: number } | undefined;
      if (!job || data?.runId !== runId || typeof data.paramsVersion !== 'number') continue;
      if (decodeVersion(data.paramsVersion).epoch >= epoch) continue;
      try {
        await job.remove();
        removed++;
      } catch {
        // Locked (running) or already gone: its handler will find its version stale.
      }
    }
  }
  if (removed > 0) log.info({ removed, runId }, 'removed queued stage-1 jobs of an earlier coordinator run');
}

/** Longest-processing-time-first makespan of independent jobs on `workers` identical workers. */
export function makespan(durations: readonly number[], workers: number): number {
  const loads = new Array<number>(Math.max(1, workers)).fill(0);
  for (const d of [...durations].sort((a, b) => b - a)) {
    let least = 0;
    for (let i = 1; i < loads.length; i++) if (loads[i] < loads[least]) least = i;
    loads[least] += d;
  }
  return Math.max(...loads);
}

