import { performance } from 'node:perf_hooks';
import { createLogger, type Logger } from '@scaleot/core';
import type { JobContext, JobHandlers, JobPayload } from '@scaleot/queue';
import { ComputeExecutor } from '@scaleot/model';
import {
  createTensor,
  ParameterSubscriber,
  ResultSender,
  TensorSet,
  TransportError,
  type CurveClientOptions,
  type ParameterSnapshot,
  type ResultSenderOptions,
} from '@scaleot/transport';
import { DelayedError } from 'bullmq';
import { ClusterError } from './ClusterError.js';
import { resolveArtifact } from './clusterConfig.js';
import type { Stage1ComputeArgs, Stage1ShardCompute } from './computeJobs.js';
import { COMPUTE_JOBS } from './pipelineHandlers.js';
import { shardResultKey, type RolloutJobResult, type ShardJobResult, type ShardResultMeta, type Stage1ParamsMeta } from './stage1Protocol.js';

export interface Stage1WorkerRuntimeOptions {
  /** Shared storage: relative dataset and model references resolve under it. */
  storageDir: string;
  /** Publisher address when a payload names none (`tcp://SCALEOT_COORDINATOR_HOST:5555`). */
  defaultParamsAddress?: string;
  /** CURVE client keys (the coordinator's public key). Default: plain TCP. */
  curve?: CurveClientOptions;
  /** How long a shard job waits for its parameter version, ms. Default 120000. */
  paramsTimeoutMs?: number;
  /**
   * How long a rollout job waits for the round's updated parameters before it hands its slot back
   * (the job is delayed and retried), ms. Default 10000.
   */
  rolloutWaitMs?: number;
  /** Delay of a rollout handed back while the round's update is pending, ms. Default 500. */
  rolloutRetryDelayMs?: number;
  /** Result delivery: ack timeout and attempts (checksum failures and timeouts are resent). */
  sender?: Pick<ResultSenderOptions, 'ackTimeoutMs' | 'attempts' | 'beforeSend'>;
  /** Where the shard and rollout compute runs (the base model is cached in its thread). Default: a new ComputeExecutor, closed with the runtime. */
  compute?: ComputeExecutor;
  /** Called with the tensor bytes moved (metrics). */
  onTransfer?: (direction: 'sent' | 'received', bytes: number) => void;
  logger?: Logger;
}

/**
 * The worker half of distributed stage 1: `stage1.shard` (harmonizer gradients of one slice of the
 * round's batch, sent to the coordinator over ZeroMQ) and `stage1.rollout` (the loss of one candidate
 * mask, returned as the job result). Both call the same pieces as the single-process trainer
 * (harmonizerGradientStep, rolloutLoss); the coordinator decides batches, masks and normalisers.
 */
export class Stage1WorkerRuntime {
  private readonly subscribers = new Map<string, ParameterSubscriber>();
  private readonly senders = new Map<string, ResultSender>();
  private readonly log: Logger;
  private readonly compute: ComputeExecutor;
  private readonly ownsCompute: boolean;
  private readonly modelDirs = new Set<string>();
  private receivedKey?: string;

  constructor(private readonly options: Stage1WorkerRuntimeOptions) {
    this.log = options.logger ?? createLogger('cluster.stage1-worker');
    this.ownsCompute = !options.compute;
    this.compute = options.compute ?? new ComputeExecutor({ logger: this.log });
  }

  handlers(): JobHandlers {
    return {
      'stage1.shard': (payload, context) => this.shard(payload, context),
      'stage1.rollout': (payload, context) => this.rollout(payload, context),
    };
  }

  async shard(payload: JobPayload<'stage1.shard'>, context?: Pick<JobContext, 'progress' | 'signal'>): Promise<ShardJobResult> {
    const started = performance.now();
    await context?.progress({ pid: process.pid, phase: 'params' });
    const snapshot = await this.subscriber(payload.paramsAddress).fetch(payload.paramsVersion, { timeoutMs: this.options.paramsTimeoutMs ?? 120_000 });
    if (snapshot.version !== payload.paramsVersion) {
      // The coordinator moved on (it only advances once every shard of a round delivered), or restarted.
      this.log.info({ want: payload.paramsVersion, have: snapshot.version, runId: payload.runId }, 'stale shard job: skipped');
      return { shardIndex: payload.shardIndex, version: payload.paramsVersion, stale: true };
    }
    const meta = this.metaOf(snapshot, payload.runId);
    const batchSpec = payload.batch;
    if (batchSpec.type !== 'windows') {
      throw new ClusterError('BAD_BATCH', `stage-1 shards read explicit windows, got a "${batchSpec.type}" batch`, { where: 'stage1.shard.batch', unrecoverable: true });
    }
    await context?.progress({ pid: process.pid, phase: 'compute' });
    const computeStarted = performance.now();
    const step = await this.compute.run<Stage1ShardCompute>({ module: COMPUTE_JOBS, exportName: 'stage1ShardCompute', args: this.computeArgs(snapshot, meta, payload.paramsAddress, batchSpec) }, { signal: context?.signal });
    const tensors = new TensorSet();
    step.names.forEach((name, i) => tensors.set(name, createTensor(step.grads[i], step.shapes[i])));
    const computeSeconds = (performance.now() - computeStarted) / 1000;
    const resultMeta: ShardResultMeta = { nllSum: step.nllSum, tokens: step.tokens, alignSum: step.alignSum, rows: step.rows, computeSeconds };
    await context?.progress({ pid: process.pid, phase: 'send' });
    const receipt = await this.sender(payload.resultAddress).send(shardResultKey(payload.runId, payload.paramsVersion, payload.shardIndex), tensors, { ...resultMeta });
    this.options.onTransfer?.('sent', receipt.bytes);
    this.log.debug({ runId: payload.runId, round: payload.round, shard: payload.shardIndex, seconds: (performance.now() - started) / 1000 }, 'shard done');
    return { shardIndex: payload.shardIndex, version: payload.paramsVersion, attempts: receipt.attempts, duplicate: receipt.duplicate, bytes: receipt.bytes, computeSeconds };
  }

  async rollout(payload: JobPayload<'stage1.rollout'>, context?: Pick<JobContext, 'progress' | 'job' | 'signal'>): Promise<RolloutJobResult> {
    await context?.progress({ pid: process.pid, phase: 'params' });
    let snapshot: ParameterSnapshot;
    try {
      snapshot = await this.subscriber(payload.paramsAddress).fetch(payload.paramsVersion, { timeoutMs: this.options.rolloutWaitMs ?? 10_000 });
    } catch (error) {
      // The round's update waits for shards still running (maybe on a worker that died): give this
      // worker's slot back so it can pick up a recovered shard instead of idling here.
      if (error instanceof TransportError && error.code === 'TIMEOUT' && context?.job?.token) {
        await context.job.moveToDelayed(Date.now() + (this.options.rolloutRetryDelayMs ?? 500), context.job.token);
        throw new DelayedError();
      }
      throw error;
    }
    if (snapshot.version !== payload.paramsVersion) {
      return { candidateIndex: payload.candidateIndex, version: payload.paramsVersion, stale: true };
    }
    const meta = this.metaOf(snapshot, payload.runId);
    const batchSpec = payload.batch;
    if (batchSpec.type !== 'windows') {
      throw new ClusterError('BAD_BATCH', `stage-1 rollouts read explicit windows, got a "${batchSpec.type}" batch`, { where: 'stage1.rollout.batch', unrecoverable: true });
    }
    if (payload.mask.length !== meta.mask.length) {
      throw new ClusterError('BAD_MASK', `the mask has ${payload.mask.length} entries, the model ${meta.mask.length} blocks`, { where: 'stage1.rollout.mask', unrecoverable: true });
    }
    await context?.progress({ pid: process.pid, phase: 'compute' });
    const started = performance.now();
    const { loss } = await this.compute.run<{ loss: number }>({ module: COMPUTE_JOBS, exportName: 'stage1RolloutCompute', args: { ...this.computeArgs(snapshot, meta, payload.paramsAddress, batchSpec), mask: payload.mask } }, { signal: context?.signal });
    return { candidateIndex: payload.candidateIndex, version: payload.paramsVersion, loss, computeSeconds: (performance.now() - started) / 1000 };
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscribers.values()].map((s) => s.close()));
    await Promise.all([...this.senders.values()].map((s) => s.close()));
    this.subscribers.clear();
    this.senders.clear();
    if (this.ownsCompute) await this.compute.close();
  }

  private metaOf(snapshot: ParameterSnapshot, runId: string): Stage1ParamsMeta {
    const meta = snapshot.meta as unknown as Stage1ParamsMeta | undefined;
    if (!meta || typeof meta !== 'object' || !Array.isArray(meta.mask) || !Array.isArray(meta.middle)) {
      throw new ClusterError('BAD_PARAMS', `parameter version ${snapshot.version} carries no stage-1 round metadata; is the publisher a stage-1 coordinator?`, { where: 'stage1 params', unrecoverable: false });
    }
    if (meta.runId !== runId) {
      throw new ClusterError('BAD_PARAMS', `the publisher serves run "${meta.runId}", this job belongs to "${runId}"`, { where: 'stage1 params', unrecoverable: true });
    }
    return meta;
  }

  /** Base models the compute thread has loaded (it keeps them for later jobs). */
  get models(): string[] {
    return [...this.modelDirs];
  }

  private computeArgs(snapshot: ParameterSnapshot, meta: Stage1ParamsMeta, address: string | undefined, batch: { dataset: string; windowIndices: number[]; windowLength?: number }): Stage1ComputeArgs {
    const weights = new Map<string, Float32Array>();
    let bytes = 0;
    for (const [name, tensor] of snapshot.tensors) {
      weights.set(name, tensor.data as Float32Array);
      bytes += tensor.data.byteLength;
    }
    const paramsKey = `${address ?? ''}|${snapshot.version}`;
    if (paramsKey !== this.receivedKey) this.options.onTransfer?.('received', bytes);
    this.receivedKey = paramsKey;
    const modelDir = resolveArtifact(this.options.storageDir, meta.model);
    this.modelDirs.add(modelDir);
    return {
      modelDir,
      paramsKey,
      weights,
      meta: { middle: meta.middle, rank: meta.rank, eps: meta.eps, mask: meta.mask, alignWeight: meta.alignWeight, microBatchSize: meta.microBatchSize, tokens: meta.tokens, rows: meta.rows },
      dataset: resolveArtifact(this.options.storageDir, batch.dataset),
      windowIndices: batch.windowIndices,
      windowLength: batch.windowLength,
    };
  }

  private subscriber(address: string | undefined): ParameterSubscriber {
    const resolved = address ?? this.options.defaultParamsAddress;
    if (!resolved) throw new ClusterError('BAD_OPTION', 'the job names no paramsAddress and the worker has no default; set SCALEOT_COORDINATOR_HOST', { where: 'stage1 params', unrecoverable: true });
    let subscriber = this.subscribers.get(resolved);
    if (!subscriber) {
      subscriber = new ParameterSubscriber({ address: resolved, curve: this.options.curve, pollMs: 5_000, replyGraceMs: 5_000, logger: this.log });
      this.subscribers.set(resolved, subscriber);
    }
    return subscriber;
  }

  private sender(address: string): ResultSender {
    let sender = this.senders.get(address);
    if (!sender) {
      sender = new ResultSender({ address, curve: this.options.curve, ackTimeoutMs: this.options.sender?.ackTimeoutMs ?? 30_000, attempts: this.options.sender?.attempts ?? 5, beforeSend: this.options.sender?.beforeSend, logger: this.log });
      this.senders.set(address, sender);
    }
    return sender;
  }
}
