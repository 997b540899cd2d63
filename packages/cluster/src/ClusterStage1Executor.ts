import { performance } from 'node:perf_hooks';
import type { Logger } from '@scaleot/core';
import { JobQueue, JobWorker, type FlowSpec, type RedisConnection } from '@scaleot/queue';
import type { Stage1Executor, Stage1Gradients, Stage1Round, Stage1RunContext } from '@scaleot/scaleot';
import { createTensor, ParameterPublisher, ResultCollector, TensorSet, TransportError, type JsonValue } from '@scaleot/transport';
import * as tf from '@tensorflow/tfjs';
import { Job, type Queue } from 'bullmq';
import { ClusterError } from './ClusterError.js';
import { decodeVersion, paramsVersion, shardResultKey, type RolloutJobResult, type ShardResultMeta, type Stage1ParamsMeta } from './stage1Protocol.js';

export interface ClusterStage1ExecutorOptions {
  runId: string;
  /** This coordinator incarnation (part of every parameter version). */
  epoch: number;
  /** The full model as workers resolve it. */
  modelDir: string;
  /** Token streams in shared storage (written by the caller). */
  trainRef: string;
  valRef: string;
  /** Queue of the shard jobs (and, without `rolloutQueue`, the rollout jobs); the round parents go to `<name>-control`, processed here. */
  queue: JobQueue;
  /** Queue of the rollout jobs when they are routed elsewhere (SCALEOT_JOB_ROUTES). Default `queue`. */
  rolloutQueue?: JobQueue;
  connection?: RedisConnection;
  /** Shard jobs per round. Default 2. */
  shards?: number;
  publisher: ParameterPublisher;
  collector: ResultCollector;
  paramsAddress: string;
  resultAddress: string;
  /** Priority of shard jobs (rollouts get one more). Default 5. */
  priority?: number;
  signal?: AbortSignal;
  logger: Logger;
}

/** What the executor measured of the last round. */
export interface ClusterRoundCompute {
  /** The longest shard's compute. */
  shardSeconds: number;
  rolloutSeconds: number[];
  /** Summing the shard gradients. */
  sumSeconds: number;
}

interface RoundInFlight {
  parentId: string;
  done: Promise<Record<string, unknown>>;
  failure: { promise: Promise<never>; stop: () => void };
  v1: number;
}

/**
 * Stage 1's compute as jobs: each round publishes the harmonizers (phase 0) over ZeroMQ, enqueues one
 * flow (a `stage1.round` parent over shard and rollout jobs, run by workers' Stage1WorkerRuntime), sums
 * the shards' gradients (each normalised by the whole batch, so they add up to its gradient), and once
 * the loop applied the update publishes the harmonizers again (phase 1) for the rollouts.
 */
export class ClusterStage1Executor implements Stage1Executor {
  private run?: Stage1RunContext;
  private slices: [number, number][] = [];
  private readonly controlName: string;
  private readonly controlQueue: JobQueue;
  private readonly control: JobWorker;
  private readonly waiters = new Map<string, (values: Record<string, unknown>) => void>();
  private round?: RoundInFlight;
  last: ClusterRoundCompute = { shardSeconds: 0, rolloutSeconds: [], sumSeconds: 0 };

  constructor(private readonly o: ClusterStage1ExecutorOptions) {
    this.controlName = `${o.queue.name}-control`;
    this.controlQueue = new JobQueue({ name: this.controlName, prefix: o.queue.prefix, connection: o.connection });
    this.control = new JobWorker({
      queue: this.controlName,
      prefix: o.queue.prefix,
      connection: o.connection,
      logger: o.logger,
      handlers: {
        'stage1.round': async (_payload, context) => {
          const values = await context.childrenValues<unknown>();
          this.waiters.get(String(context.job.id))?.(values);
          return { children: Object.keys(values).length };
        },
      },
    });
  }

  get shardCount(): number {
    return this.slices.length;
  }

  async start(run: Stage1RunContext): Promise<void> {
    this.run = run;
    this.slices = sliceRows(run.hyper.batchSize, run.hyper.microBatchSize, this.o.shards ?? 2);
    await this.control.waitUntilReady();
    await removeStaleRounds([...new Set([this.controlQueue.queue, this.o.queue.queue, (this.o.rolloutQueue ?? this.o.queue).queue])], this.o.runId, this.o.epoch, this.o.logger);
  }

  private async publish(version: number, round: number, phase: 0 | 1, mask: number[]): Promise<void> {
    const { hyper, layout, modelConfig, harmonizers } = this.run!;
    const tensors = new TensorSet();
    for (const h of harmonizers.values()) for (const [name, v] of h.namedVariables()) tensors.set(name, createTensor((await v.data()) as Float32Array, v.shape));
    const meta: Stage1ParamsMeta = {
      runId: this.o.runId, round, phase, model: this.o.modelDir, middle: layout.middle, rank: hyper.rank, eps: modelConfig.normEps, mask,
      tokens: hyper.batchSize * hyper.seqLen, rows: hyper.batchSize, microBatchSize: hyper.microBatchSize, alignWeight: hyper.alignWeight,
    };
    await this.o.publisher.publish(version, tensors, { meta: meta as unknown as JsonValue });
  }

  async gradients(round: Stage1Round): Promise<Stage1Gradients> {
    const { hyper } = this.run!;
    const { runId, epoch, paramsAddress, resultAddress } = this.o;
    const step = round.step;
    const v0 = paramsVersion(epoch, step, 0);
    const v1 = paramsVersion(epoch, step, 1);
    const priority = this.o.priority ?? 5;
    await this.publish(v0, step, 0, round.mask);
    const windowLength = hyper.seqLen + 1;
    const children: FlowSpec[] = this.slices.map(([from, to], shardIndex) => ({
      kind: 'stage1.shard',
      payload: { runId, round: step, shardIndex, shardCount: this.slices.length, batch: { type: 'windows', dataset: this.o.trainRef, windowIndices: round.trainStarts.slice(from, to), windowLength }, paramsVersion: v0, paramsAddress, resultAddress },
      options: { priority, attempts: 5, backoff: { type: 'fixed', delay: 200 } },
    }));
    const candidates = round.rollout?.candidates ?? [];
    candidates.forEach((candidate, candidateIndex) =>
      children.push({
        kind: 'stage1.rollout',
        queueName: (this.o.rolloutQueue ?? this.o.queue).name,
        payload: { runId, round: step, candidateIndex, mask: candidate as (0 | 1)[], paramsVersion: v1, batch: { type: 'windows', dataset: this.o.valRef, windowIndices: round.rollout!.valStarts, windowLength }, paramsAddress, resultAddress },
        options: { priority: priority + 1, attempts: 5, backoff: { type: 'fixed', delay: 200 } },
      }),
    );
    let resolveRound!: (values: Record<string, unknown>) => void;
    const done = new Promise<Record<string, unknown>>((r) => (resolveRound = r));
    const node = await this.o.queue.addFlow({
      kind: 'stage1.round',
      queueName: this.controlName,
      payload: { runId, round: step, paramsVersion: v0, shardCount: this.slices.length, candidateCount: Math.max(1, candidates.length) },
      options: { priority: 1, attempts: 1 },
      children,
    });
    const parentId = String(node.job.id);
    this.waiters.set(parentId, resolveRound);
    const inFlight: RoundInFlight = { parentId, done, failure: watchParent(this.controlQueue.queue, parentId, this.o.signal), v1 };
    this.round = inFlight;

    // Gradients over ZeroMQ.
    const keys = this.slices.map((_, i) => shardResultKey(runId, v0, i));
    const collected = await Promise.race([collectAll(this.o.collector, keys), inFlight.failure.promise]);
    const sumStarted = performance.now();
    let nllSum = 0;
    let alignSum = 0;
    let shardSeconds = 0;
    const sums = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const key of keys) {
      const result = collected.get(JSON.stringify([key.runId, key.round, key.jobId]))!;
      const meta = result.meta as unknown as ShardResultMeta;
      nllSum += meta.nllSum;
      alignSum += meta.alignSum;
      shardSeconds = Math.max(shardSeconds, meta.computeSeconds ?? 0);
      for (const [name, tensor] of result.tensors) {
        const data = tensor.data as Float32Array;
        const acc = sums.get(name);
        if (!acc) sums.set(name, { shape: [...tensor.shape], data: Float32Array.from(data) });
        else for (let k = 0; k < data.length; k++) acc.data[k] += data[k];
      }
    }
    const grads = new Map<string, tf.Tensor>();
    for (const [name, { shape, data }] of sums) grads.set(name, tf.tensor(data, shape, 'float32'));
    this.last = { shardSeconds, rolloutSeconds: [], sumSeconds: (performance.now() - sumStarted) / 1000 };
    if (!round.rollout) await Promise.race([done, inFlight.failure.promise]);
    return { grads, nllSum, tokens: hyper.batchSize * hyper.seqLen, alignSum, rows: hyper.batchSize };
  }

  async rollouts(round: Stage1Round): Promise<number[]> {
    const inFlight = this.round!;
    await this.publish(inFlight.v1, round.step, 1, round.mask);
    const values = await Promise.race([inFlight.done, inFlight.failure.promise]);
    const candidates = round.rollout!.candidates;
    const losses = new Array<number>(candidates.length).fill(Number.NaN);
    for (const value of Object.values(values)) {
      const r = value as RolloutJobResult;
      if (r && typeof r === 'object' && 'candidateIndex' in r && r.version === inFlight.v1 && typeof r.loss === 'number') {
        losses[r.candidateIndex] = r.loss;
        this.last.rolloutSeconds.push(r.computeSeconds ?? 0);
      }
    }
    if (!losses.every(Number.isFinite)) throw new ClusterError('ROUND_FAILED', `round ${round.step}: rollout losses missing (${losses.join(', ')})`, { where: this.o.runId, unrecoverable: false });
    return losses;
  }

  endRound(): void {
    this.settle();
  }

  private settle(): void {
    if (!this.round) return;
    this.round.failure.stop();
    this.waiters.delete(this.round.parentId);
    this.round = undefined;
  }

  async close(): Promise<void> {
    this.settle();
    await this.control.close();
    await this.controlQueue.close();
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

/** Rejects once the round's parent failed for good (a child ran out of attempts or was invalid), or on abort. */
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
