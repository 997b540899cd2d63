import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { atomicWriteJson, createLogger, type Logger } from '@scaleot/core';
import { readModelConfig } from '@scaleot/model';
import { sourceModelInfo } from '@scaleot/offsite';
import type { JobQueue, RedisConnection } from '@scaleot/queue';
import { readStage1, resolveStage1Hyper, stage1Loop, stage1Streams, STAGE1_LOG, STAGE1_MANIFEST, type Stage1HyperParameters, type Stage1Result, type Stage1StepLog } from '@scaleot/scaleot';
import { ParameterPublisher, ResultCollector } from '@scaleot/transport';
import { ClusterStage1Executor, sliceRows } from './ClusterStage1Executor.js';
import { CLUSTER_STAGE1_STATE } from './stage1Checkpoint.js';
import { writeTokenStream } from './tokenStreams.js';

export { sliceRows } from './ClusterStage1Executor.js';

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
  /** Queue the shard and rollout jobs go to (its workers run the Stage1WorkerRuntime handlers). */
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
  const { hyper, layout } = resolveStage1Hyper(opts, modelConfig);
  const streams = await stage1Streams(opts, modelDir, hyper.seqLen);

  const shardCount = sliceRows(hyper.batchSize, hyper.microBatchSize, opts.shards ?? 2).length;

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
  try {
    const executor = new ClusterStage1Executor({
      runId, epoch, modelDir, trainRef, valRef, queue: opts.queue, rolloutQueue: opts.rolloutQueue, connection: opts.connection, shards: opts.shards, publisher, collector,
      paramsAddress: opts.paramsAddress ?? publisher.address, resultAddress: opts.resultAddress ?? collector.address, priority: opts.priority, signal: opts.signal, logger: log,
    });
    const timings: RoundTiming[] = [];
    const result = await stage1Loop(executor, {
      hyper, layout, modelConfig, source, streams, outDir, checkpointDir,
      resume: opts.resume,
      // A round is expensive and a coordinator may die between any two: checkpoint every one.
      checkpointEvery: 1,
      stopAfterStep: opts.stopAfterRound,
      stateFormat: CLUSTER_STAGE1_STATE,
      manifestExtras: { distributed: { shards: shardCount, runId } },
      unit: 'round',
      logger: log,
      onStep: (entry, loop) => {
        const c = executor.last;
        const timing: RoundTiming = {
          round: entry.step - 1,
          seconds: loop.seconds,
          computeSeconds: c.shardSeconds + makespan(c.rolloutSeconds, executor.shardCount),
          aggregateSeconds: c.sumSeconds + loop.updateSeconds,
          checkpointSeconds: loop.checkpointSeconds,
        };
        timings.push(timing);
        opts.onStep?.(entry, timing);
      },
    });
    return { ...result, epoch, timings, seconds: (performance.now() - started) / 1000 };
  } finally {
    if (ownPublisher) await publisher.close();
    if (ownCollector) await collector.close();
  }
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

