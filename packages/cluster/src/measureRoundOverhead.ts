import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger } from '@scaleot/core';
import { JobQueue } from '@scaleot/queue';
import { corpusStreams, type Stage1HyperParameters } from '@scaleot/scaleot';
import { initBackend } from '@scaleot/backend';
import { spawnApp, stopApp, uniqueQueuePrefix, type ManagedProcess } from './LocalCluster.js';
import { runDistributedStage1, type RoundTiming } from './runDistributedStage1.js';

export interface RoundOverheadOptions {
  /** Worker processes (= shards per round). Default 2. */
  workers?: number;
  /** Rounds timed (one more runs first as warm-up: model load, wasm compile). Default 3. */
  rounds?: number;
  redis?: string;
  /** Stage-1 settings of the timed rounds. Default: stage 1's own (batch 16 × the model's context), 3 rollouts of 8 windows. */
  stage1?: Partial<Stage1HyperParameters>;
  modelDir?: string;
  dataRoot?: string;
}

export interface RoundOverheadResult {
  /** (round wall time − checkpoint − compute critical path) / compute critical path, over the timed rounds. */
  overheadFraction: number;
  /** The same with the per-round checkpoint counted as overhead too. */
  overheadFractionWithCheckpoint: number;
  computeSeconds: number;
  roundSeconds: number;
  rounds: RoundTiming[];
}

const REPO_ROOT = resolve(import.meta.dirname, '../../..');

/**
 * Stage-1 round overhead with real worker processes: queue latency (flow add → pick-up), parameter and
 * gradient transfer over ZeroMQ, and the coordinator's aggregation, as a fraction of the compute on the
 * critical path (the slowest shard + the slowest rollout).
 */
export async function measureRoundOverhead(options: RoundOverheadOptions = {}): Promise<RoundOverheadResult> {
  const workers = options.workers ?? 2;
  const rounds = options.rounds ?? 3;
  const redis = options.redis ?? 'redis://127.0.0.1:6379';
  const modelDir = resolve(options.modelDir ?? join(REPO_ROOT, 'models/sotu-gpt2-tiny'));
  const dataRoot = resolve(options.dataRoot ?? join(REPO_ROOT, 'data'));
  await initBackend(process.env.SCALEOT_BACKEND);
  const storage = await mkdtemp(join(tmpdir(), 'scaleot-round-overhead-'));
  const prefix = uniqueQueuePrefix('overhead');
  const log = createLogger('round-overhead');
  const env = { SCALEOT_REDIS_URL: redis, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_LOG_LEVEL: 'info' };
  const processes: ManagedProcess[] = [];
  const queue = new JobQueue({ connection: redis, prefix });
  try {
    for (let i = 0; i < workers; i++) processes.push(spawnApp('worker', `worker-${i + 1}`, env, log));
    const streams = await corpusStreams('sotu', dataRoot, modelDir, 20);
    await Promise.all(processes.map((p) => p.waitForLog('worker ready').catch(() => undefined)));
    const result = await runDistributedStage1({
      modelDir,
      outDir: join(storage, 'stage1'),
      storageDir: storage,
      streams,
      queue,
      connection: redis,
      shards: workers,
      runId: 'overhead',
      nAdapter: 4,
      steps: rounds + 1,
      batchSize: 16,
      microBatchSize: 4,
      rlBatchSize: 8,
      candidates: 3,
      warmupSteps: 1,
      ...options.stage1,
      logger: log,
    });
    const timed = result.timings.slice(1);
    const compute = timed.reduce((a, t) => a + t.computeSeconds, 0);
    const round = timed.reduce((a, t) => a + t.seconds, 0);
    const checkpoint = timed.reduce((a, t) => a + t.checkpointSeconds, 0);
    return {
      overheadFraction: (round - checkpoint - compute) / compute,
      overheadFractionWithCheckpoint: (round - compute) / compute,
      computeSeconds: compute,
      roundSeconds: round,
      rounds: timed,
    };
  } finally {
    await Promise.all(processes.map((p) => stopApp(p)));
    for (const name of ['scaleot', 'scaleot-control']) {
      const q = new JobQueue({ name, connection: redis, prefix });
      await q.obliterate().catch(() => undefined);
      await q.close();
    }
    await queue.close();
    await rm(storage, { recursive: true, force: true });
  }
}
