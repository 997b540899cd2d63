import { createLogger, type Logger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import type { StagePlan } from '@scaleot/model';
import type { JobQueue } from '@scaleot/queue';
import { PipelineInbox, PipelineOutbox, TensorSet, type PipelineMessage } from '@scaleot/transport';
import type { Job } from 'bullmq';
import { ClusterError } from './ClusterError.js';
import type { StageStats } from './pipelineStageCompute.js';

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
  resolve: (nll: { data: Float32Array; shape: number[] }) => void;
  reject: (error: Error) => void;
}

/**
 * The coordinator's side of one pipeline-parallel run: enqueues one `pipeline.stage` job per planned
 * stage, waits until every stage has loaded its blocks and bound its inbox, routes them (each stage
 * connects to the next; activations never pass through here), then feeds micro-batches of token rows
 * into the first stage and collects the per-token NLL the last one sends back. Micro-batches are sent
 * without waiting, so stage i works on micro-batch m + 1 while stage i + 1 works on m.
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
    if (batch.length === 0) return [];
    const t = batch[0].length;
    const micro = this.options.microBatch ?? 1;
    const parts: Promise<{ data: Float32Array; shape: number[] }>[] = [];
    for (let start = 0; start < batch.length; start += micro) {
      const rows = batch.slice(start, start + micro);
      const flat = new Int32Array(rows.length * t);
      rows.forEach((row, i) => flat.set(row, i * t));
      parts.push(this.send(flat, [rows.length, t]));
    }
    const out: Float32Array[] = [];
    for (const part of parts) {
      const { data, shape } = await part;
      for (let r = 0; r < shape[0]; r++) out.push(data.slice(r * shape[1], (r + 1) * shape[1]));
    }
    return out;
  };

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

  private send(ids: Int32Array, shape: number[]): Promise<{ data: Float32Array; shape: number[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const result = new Promise<{ data: Float32Array; shape: number[] }>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // A failed run rejects every micro-batch in flight; the caller awaits them one by one and stops at
    // the first, so the others must not surface as unhandled rejections.
    result.catch(() => undefined);
    this.microBatches++;
    this.first!.send({ header: { type: 'batch', runId: this.options.runId, id }, tensors: new TensorSet().add('ids', ids, shape, 'I32') }).catch((err: Error) => this.fail(err));
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
      if (h.type === 'nll') {
        const nll = message.tensors.require('nll');
        const waiter = this.pending.get(h.id as number);
        this.pending.delete(h.id as number);
        waiter?.resolve({ data: Float32Array.from(nll.data as Float32Array), shape: [...nll.shape] });
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
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.ended?.reject(error);
  }

  /**
   * Gives the run up: every stage still alive is told to stop (its worker is free for the next plan),
   * and stage jobs queued again (their worker died) are removed so no worker loads them for nothing.
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
      if (state !== 'active' && state !== 'completed') await job.remove().catch(() => undefined);
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
    this.inbox.close();
    void this.pumping;
  }
}
