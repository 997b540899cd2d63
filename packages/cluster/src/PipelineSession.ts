import { createLogger, type Logger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import type { StagePlan } from '@scaleot/model';
import type { JobQueue } from '@scaleot/queue';
import { PipelineInbox, PipelineOutbox, TensorSet, type JsonValue, type PipelineMessage } from '@scaleot/transport';
import type { Job } from 'bullmq';
import { ClusterError } from './ClusterError.js';
import type { StageStats, StageTrainHeader } from './pipelineStageCompute.js';

export interface PipelineSessionOptions {
  /** Queue the stage jobs go to (one worker per stage: each holds its job until the run ends). */
  queue: JobQueue;
  /** Model reference as the workers resolve it (absolute, or under their storage dir). */
  model: string;
  plan: StagePlan;
  runId: string;
  /** Host the control inbox binds and the stages reach it at. Default 127.0.0.1 (`SCALEOT_ADVERTISE_HOST` in a cluster). */
  advertiseHost?: string;
  /** Rows per micro-batch: a batch of rows is cut into micro-batches that follow each other through the stages. Default 1. */
  microBatch?: number;
  /** How long the stages may take to load and report. Default 10 minutes. */
  readyTimeoutMs?: number;
  /** Fills the per-stage gauges of /metrics. */
  metrics?: ScaleotMetrics;
  logger?: Logger;
}

export interface StageReady {
  stage: number;
  address: string;
  bytesRead: number;
  loadSeconds: number;
  peakRssBytes: number;
}

interface Pending {
  resolve: (message: PipelineMessage) => void;
  reject: (error: Error) => void;
}

/** One micro-batch of token rows: ids int32 [rows, T], row-major. */
export interface MicroBatchRows {
  ids: Int32Array;
  shape: [number, number];
  /** [rows, T − 1]: 1 where a target counts in the loss. Default: every target. */
  lossMask?: Float32Array;
}

/** A train step's result: each stage's gradients (summed over the micro-batches in order), merged by name (a weight two stages hold, a tied embedding, gets both stages' sum). */
export interface PipelineGradients {
  grads: Map<string, { data: Float32Array; shape: number[] }>;
  /** Σ NLL over the batch (nats), from the last stage. */
  nllSum: number;
  /** Σ over micro-batches of rows × alignment term, all stages' shares added. */
  alignSum: number;
}

/**
 * The coordinator's side of one pipeline-parallel run: enqueues one `pipeline.stage` job per planned
 * stage, waits until every stage has loaded its blocks and bound its inbox, routes them (each stage
 * connects to its neighbours; activations and gradients never pass through here), then feeds
 * micro-batches of token rows into the first stage. Forward batches come back from the last stage as
 * per-token NLL; train batches (stage 1, tuning) go forward to the last stage and their gradients back down,
 * each stage keeping the gradients of what it trains until `trainStep` collects them. Micro-batches are
 * sent without waiting, so stage i works on micro-batch m + 1 while stage i + 1 works on m (GPipe, the
 * backward passes interleaved with the forward ones as their gradients arrive).
 */
export class PipelineSession {
  /** Latest figures per stage (from the stats every message carries). */
  readonly stages: StageStats[] = [];
  readonly ready: StageReady[] = [];
  /** Activation and token bytes sent from stage to stage, over the run (the coordinator's own hops excluded). */
  interStageBytes = 0;
  microBatches = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly strays: string[] = [];
  private nextId = 0;
  private first?: PipelineOutbox;
  /** Direct links to the stages for `params` and `collect` (index 0 is `first`). */
  private readonly direct: PipelineOutbox[] = [];
  private readonly collecting = new Map<number, Pending>();
  /** The last parameter version sent (0: none): every batch after it names it, so no stage computes with older parameters. */
  private paramsVersion = 0;
  private ended?: { resolve: () => void; reject: (e: Error) => void };
  private failure?: Error;
  private readonly log: Logger;
  private watch?: NodeJS.Timeout;
  private pumping?: Promise<void>;

  private constructor(
    private readonly options: PipelineSessionOptions,
    private readonly inbox: PipelineInbox,
    private readonly jobs: Job[],
  ) {
    this.log = options.logger ?? createLogger('cluster.pipeline');
  }

  get stageCount(): number {
    return this.options.plan.stages.length;
  }

  /** Starts the stage jobs and returns once every stage is loaded and routed. */
  static async start(options: PipelineSessionOptions): Promise<PipelineSession> {
    const host = options.advertiseHost ?? '127.0.0.1';
    const inbox = await PipelineInbox.bind(`tcp://${host === '127.0.0.1' ? '127.0.0.1' : '0.0.0.0'}:*`, host);
    const { plan } = options;
    const jobs: Job[] = [];
    try {
      for (const stage of plan.stages) {
        jobs.push(
          await options.queue.add(
            'pipeline.stage',
            { runId: options.runId, model: options.model, stageIndex: stage.index, stageCount: plan.stages.length, fromBlock: stage.from, toBlock: stage.to, controlAddress: inbox.address },
            // A failed stage fails the run; the session, not BullMQ, decides what runs again.
            { attempts: 1 },
          ),
        );
      }
    } catch (err) {
      inbox.close();
      throw err;
    }
    const session = new PipelineSession(options, inbox, jobs);
    options.metrics?.pipelineStages.set(plan.stages.length);
    try {
      await session.awaitReady(options.readyTimeoutMs ?? 600_000);
      session.pumping = session.pump();
      session.watch = setInterval(() => void session.checkJobs(), 1000);
      session.first = PipelineOutbox.connect(session.ready[0].address);
      await session.first.send({ header: { type: 'route', runId: options.runId, addresses: session.ready.map((r) => r.address) }, tensors: new TensorSet() });
    } catch (err) {
      await session.abort(err as Error);
      throw err;
    }
    return session;
  }

  /** A `SequenceScorer.nll`: rows of T tokens → NLL of tokens 1…T−1, computed through the pipeline. */
  readonly nll = async (batch: Int32Array[]): Promise<Float32Array[]> => {
    const parts = microBatches(batch, this.options.microBatch ?? 1).map((m) => this.send(m, {}));
    const out: Float32Array[] = [];
    for (const part of parts) {
      const nll = (await part).tensors.require('nll');
      const [rows, t] = nll.shape;
      for (let r = 0; r < rows; r++) out.push(Float32Array.from((nll.data as Float32Array).subarray(r * t, (r + 1) * t)));
    }
    return out;
  };

  /**
   * Sends each stage its share of `tensors` (names → the stages holding them, by `stagesOf`) as a new
   * parameter version; every batch sent after it names the version and waits on a stage until its
   * parameters are there (they travel another way). Weights (not harmonizers) sent are the ones a train
   * step differentiates.
   */
  async sendParams(tensors: TensorSet, stagesOf: (name: string) => readonly number[]): Promise<void> {
    const version = ++this.paramsVersion;
    const shares = this.options.plan.stages.map(() => new TensorSet());
    for (const [name, t] of tensors) for (const stage of stagesOf(name)) shares[stage].set(name, t);
    await Promise.all(shares.map((share, i) => this.link(i).send({ header: { type: 'params', runId: this.options.runId, version }, tensors: share })));
  }

  /** Σ NLL (nats, float32 reductions on the last stage) of each micro-batch, forward through the stages with `mask`. */
  async maskedNllSums(batches: readonly MicroBatchRows[], mask: readonly number[]): Promise<number[]> {
    const parts = batches.map((m) => this.send(m, { mask: [...mask] }));
    const out: number[] = [];
    for (const part of parts) out.push((await part).header.nllSum as number);
    return out;
  }

  /**
   * One gradient step: the micro-batches go forward and their gradients back (GPipe with
   * re-materialisation), then every stage sends the gradients of what it trains (the mask's
   * harmonizers, the weights of the last `params`), summed in micro-batch order.
   */
  async trainStep(batches: readonly MicroBatchRows[], mask: readonly number[], train: StageTrainHeader): Promise<PipelineGradients> {
    const done = batches.map((m) => this.send(m, { mask: [...mask], train: train as unknown as JsonValue }));
    for (const d of done) await d;
    const replies = this.options.plan.stages.map(
      (stage) =>
        new Promise<PipelineMessage>((resolve, reject) => {
          if (this.failure) reject(this.failure);
          else this.collecting.set(stage.index, { resolve, reject });
        }),
    );
    for (const r of replies) r.catch(() => undefined);
    await Promise.all(this.options.plan.stages.map((stage) => this.link(stage.index).send({ header: { type: 'collect', runId: this.options.runId }, tensors: new TensorSet() })));
    const out: PipelineGradients = { grads: new Map(), nllSum: 0, alignSum: 0 };
    for (const reply of replies) {
      const message = await reply;
      out.nllSum += message.header.nllSum as number;
      out.alignSum += message.header.alignSum as number;
      for (const [name, t] of message.tensors) {
        const data = t.data as Float32Array;
        const seen = out.grads.get(name);
        if (!seen) out.grads.set(name, { data: Float32Array.from(data), shape: [...t.shape] });
        else for (let k = 0; k < data.length; k++) seen.data[k] += data[k];
      }
    }
    return out;
  }

  /** Ends the run: every stage finishes its work, reports, frees its worker. */
  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    const ended = new Promise<void>((resolve, reject) => (this.ended = { resolve, reject }));
    await this.first!.send({ header: { type: 'end', runId: this.options.runId }, tensors: new TensorSet() });
    try {
      await ended;
      // The stage jobs complete right after forwarding the end marker; wait so their workers are free.
      const deadline = Date.now() + 30_000;
      for (const job of this.jobs) {
        while (Date.now() < deadline && !['completed', 'failed'].includes(await job.getState().catch(() => 'unknown'))) await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      this.shutdown();
    }
  }

  /** Link to stage `index` for messages addressed to it alone. */
  private link(index: number): PipelineOutbox {
    if (index === 0) return this.first!;
    this.direct[index] ??= PipelineOutbox.connect(this.ready[index].address);
    return this.direct[index];
  }

  /** Sends one micro-batch into the first stage; resolves with the message that ends it (`nll`, or `backward-done` for a train batch). */
  private send({ ids, shape, lossMask }: MicroBatchRows, extra: Record<string, JsonValue>): Promise<PipelineMessage> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const result = new Promise<PipelineMessage>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // A failed run rejects every micro-batch in flight; the caller awaits them one by one and stops at
    // the first, so the others must not surface as unhandled rejections.
    result.catch(() => undefined);
    this.microBatches++;
    const tensors = new TensorSet().add('ids', ids, shape, 'I32');
    if (lossMask) tensors.add('lossMask', lossMask, [shape[0], shape[1] - 1]);
    const header: PipelineMessage['header'] = { ...extra, type: 'batch', runId: this.options.runId, id };
    if (this.paramsVersion > 0) header.version = this.paramsVersion;
    this.first!.send({ header, tensors }).catch((err: Error) => this.fail(err));
    return result;
  }

  private async awaitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const byStage = new Map<number, StageReady>();
    while (byStage.size < this.stageCount) {
      await this.checkJobs();
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new ClusterError('PIPELINE_FAILED', `only ${byStage.size} of ${this.stageCount} pipeline stages reported within ${timeoutMs} ms; are ${this.stageCount} workers serving queue "${this.options.queue.name}"?`, { where: 'pipeline.stage' });
      let message: PipelineMessage;
      try {
        message = await this.receiveWithin(1000);
      } catch {
        continue;
      }
      const h = message.header;
      if (h.type !== 'ready' || h.runId !== this.options.runId) continue;
      const entry = { stage: h.stage as number, address: h.address as string, bytesRead: h.bytesRead as number, loadSeconds: h.loadSeconds as number, peakRssBytes: h.peakRssBytes as number };
      if (byStage.has(entry.stage)) continue;
      byStage.set(entry.stage, entry);
      // Known at once, so a failed start can tell the stages that did load to stop.
      this.ready.push(entry);
      const stage = this.options.plan.stages[h.stage as number];
      this.options.metrics?.pipelineStageMemoryBytes.set({ stage: String(stage.index), blocks: `${stage.from}-${stage.to}` }, h.peakRssBytes as number);
      this.log.info({ runId: this.options.runId, stage: h.stage, address: h.address, loadSeconds: h.loadSeconds, bytesRead: h.bytesRead, peakRssBytes: h.peakRssBytes }, 'pipeline stage ready');
    }
    this.ready.sort((a, b) => a.stage - b.stage);
  }

  private async receiveWithin(ms: number): Promise<PipelineMessage> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)));
    try {
      return await Promise.race([this.receiveOne(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private receiving?: Promise<PipelineMessage>;
  /** One receive at a time on the socket; a timed-out wait is picked up by the next call. */
  private receiveOne(): Promise<PipelineMessage> {
    this.receiving ??= this.inbox.receive().finally(() => (this.receiving = undefined));
    return this.receiving;
  }

  private async pump(): Promise<void> {
    for (;;) {
      let message: PipelineMessage;
      try {
        message = await this.receiveOne();
      } catch (err) {
        if (this.ended === undefined || this.pending.size > 0) this.fail(err as Error);
        return;
      }
      const h = message.header;
      if (h.runId !== this.options.runId) continue;
      if (h.type === 'ready') {
        // A stage job re-run after its worker died (BullMQ re-queued it and another worker took it):
        // the run lost that stage's in-flight work. Remember the newcomer so abort() frees it too.
        this.strays.push(h.address as string);
        this.fail(new ClusterError('PIPELINE_FAILED', `pipeline stage ${h.stage as number} restarted on another worker: its first worker died`, { where: 'pipeline.stage' }));
        continue;
      }
      if (Array.isArray(h.stats)) this.record(h.stats as unknown as StageStats[]);
      if (h.type === 'nll' || h.type === 'backward-done') {
        const waiter = this.pending.get(h.id as number);
        this.pending.delete(h.id as number);
        waiter?.resolve(message);
      } else if (h.type === 'grads') {
        const waiter = this.collecting.get(h.stage as number);
        this.collecting.delete(h.stage as number);
        waiter?.resolve(message);
      } else if (h.type === 'end') {
        this.ended?.resolve();
        return;
      }
    }
  }

  private record(trail: StageStats[]): void {
    let inter = 0;
    for (const s of trail) {
      this.stages[s.stage] = s;
      const stage = this.options.plan.stages[s.stage];
      const labels = { stage: String(s.stage), blocks: `${stage.from}-${stage.to}` };
      this.options.metrics?.pipelineStageMemoryBytes.set(labels, s.peakRssBytes);
      this.options.metrics?.pipelineStageStepSeconds.set(labels, s.stepSeconds);
      if (s.stage < this.stageCount - 1) inter += s.bytesSent;
    }
    if (trail.length === this.stageCount) this.interStageBytes = inter;
  }

  private async checkJobs(): Promise<void> {
    if (this.failure) return;
    for (const job of this.jobs) {
      const state = await job.getState().catch(() => 'unknown');
      const stage = (job.data as { stageIndex: number }).stageIndex;
      if (state === 'failed') {
        const fresh = await this.options.queue.queue.getJob(job.id!).catch(() => undefined);
        this.fail(new ClusterError('PIPELINE_FAILED', `pipeline stage job ${job.id} (stage ${stage}) failed: ${fresh?.failedReason ?? 'unknown reason'}`, { where: 'pipeline.stage' }));
        return;
      }
      // A stage that reported ready and is queued again lost its worker (BullMQ's stalled check
      // re-queued the job once the dead worker's lock expired): its blocks and activations are gone.
      if (this.ready.some((r) => r.stage === stage) && (state === 'waiting' || state === 'wait' || state === 'prioritized' || state === 'delayed' || state === 'completed')) {
        if (state === 'completed' && this.ended) continue;
        this.fail(new ClusterError('PIPELINE_FAILED', `pipeline stage ${stage} lost its worker (job ${job.id} is ${state})`, { where: 'pipeline.stage' }));
        return;
      }
    }
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.log.warn({ runId: this.options.runId, err: error.message }, 'pipeline run failed');
    for (const waiter of [...this.pending.values(), ...this.collecting.values()]) waiter.reject(error);
    this.pending.clear();
    this.collecting.clear();
    this.ended?.reject(error);
  }

  /**
   * Gives the run up: every stage still alive is told to stop (its worker is free for the next plan),
   * over ZeroMQ and through its job's cancel flag, and stage jobs queued again (their worker died) are
   * removed so no worker loads them for nothing.
   */
  async abort(error: Error): Promise<void> {
    this.fail(error);
    // Give a stage job picked up again a moment to report, so it is told to stop as well.
    await new Promise((r) => setTimeout(r, 500));
    for (const address of [...this.ready.map((r) => r.address), ...this.strays]) {
      const out = PipelineOutbox.connect(address, { lingerMs: 2000 });
      await out.send({ header: { type: 'abort', runId: this.options.runId, reason: error.message }, tensors: new TensorSet() }).catch(() => undefined);
      out.close();
    }
    for (const job of this.jobs) {
      const state = await job.getState().catch(() => 'unknown');
      if (state === 'active') {
        // Also through Redis: a stage that missed the abort above (its ZeroMQ message lost under load,
        // or a re-queued job that started after it) would otherwise hold its worker until its idle
        // timeout, and the next plan would wait for that worker.
        await this.options.queue.signalCancel(job.id!).catch(() => undefined);
      } else if (state !== 'completed') await job.remove().catch(() => undefined);
    }
    this.shutdown();
  }

  /** Whether the run failed (a stage died or errored); `abort()` then frees the other stages. */
  get failed(): Error | undefined {
    return this.failure;
  }

  private shutdown(): void {
    if (this.watch) clearInterval(this.watch);
    this.first?.close();
    for (const link of this.direct) link?.close();
    this.inbox.close();
    void this.pumping;
  }
}

/** Rows of T tokens cut into micro-batches of `size` rows (the last one may be shorter). */
export function microBatches(rows: readonly Int32Array[], size: number): MicroBatchRows[] {
  const out: MicroBatchRows[] = [];
  if (rows.length === 0) return out;
  const t = rows[0].length;
  const step = Math.max(1, Math.floor(size));
  for (let start = 0; start < rows.length; start += step) {
    const part = rows.slice(start, start + step);
    const ids = new Int32Array(part.length * t);
    part.forEach((row, i) => ids.set(row, i * t));
    out.push({ ids, shape: [part.length, t] });
  }
  return out;
}
