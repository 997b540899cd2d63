import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import { workerMemoryBytes, type PlanOptions, type StagePlan } from '@scaleot/model';
import type { JobQueue } from '@scaleot/queue';
import { resolveArtifact } from './clusterConfig.js';
import { ClusterError } from './ClusterError.js';
import { PipelineSession } from './PipelineSession.js';
import { planPipeline } from './planPipeline.js';

export interface PipelineRunOptions {
  /** Queue of the stage workers. */
  queue: JobQueue;
  /** Model reference (absolute, or under `storageDir`; the workers resolve it under theirs). */
  model: string;
  storageDir: string;
  /** Memory budget per available worker (stage i on worker i). Default: `workers` × `workerMemoryBytes()`. */
  budgets?: number[];
  /** Workers available for stages when `budgets` is not given. Default: the workers connected to the queue. */
  workers?: number;
  /** Planner settings (overhead, activations, slack, per-stage weight cap). */
  plan?: Omit<PlanOptions, 'budgets'>;
  /** Rows per micro-batch of `PipelineSession.nll`. Default 1. */
  microBatch?: number;
  advertiseHost?: string;
  metrics?: ScaleotMetrics;
  logger?: Logger;
  /** Run id (each new plan runs as `<runId>-r<n>`). Default: a random one. */
  runId?: string;
  /** Times a stage may die over the run: each time the work in hand runs again under a new plan over the workers still connected. Default 2. */
  retries?: number;
  /** Stops the run (its stages are told to stop; the work in hand rejects with CANCELLED). */
  signal?: AbortSignal;
}

/**
 * A pipeline-parallel run that outlives its stages: it plans the stages from the workers' memory
 * budgets, starts a `PipelineSession`, and runs units of work on it (`attempt`). When a stage dies
 * mid-unit, the session is given up, the stages planned again over the workers still connected (a
 * replacement worker counts as soon as it is), and the unit runs again from its start: units are
 * deterministic (a protocol's batches, a stage-1 round's gradients), so the result equals an
 * uninterrupted run's.
 */
export class PipelineRun {
  plan!: StagePlan;
  session?: PipelineSession;
  /** Sessions started (1 + replans after a stage died). */
  attempts = 0;
  private readonly log: Logger;
  private readonly modelDir: string;
  private budgets: number[] = [];
  private perWorker = 0;
  private readonly baseId: string;

  private constructor(private readonly options: PipelineRunOptions) {
    this.log = options.logger ?? createLogger('cluster.pipeline');
    this.modelDir = resolveArtifact(options.storageDir, options.model);
    this.baseId = options.runId ?? `pipe-${randomBytes(4).toString('hex')}`;
  }

  /** Plans and starts the first session. */
  static async open(options: PipelineRunOptions): Promise<PipelineRun> {
    const run = new PipelineRun(options);
    // A cancelled run's stages stop at once; the work waiting on them rejects with CANCELLED.
    options.signal?.addEventListener('abort', () => void run.abort(new ClusterError('CANCELLED', 'the pipeline run was cancelled', { where: run.baseId })), { once: true });
    run.perWorker = options.budgets ? Math.min(...options.budgets) : workerMemoryBytes();
    run.budgets = options.budgets ?? new Array<number>(options.workers ?? (await run.liveWorkers())).fill(run.perWorker);
    await run.start();
    return run;
  }

  /** Runs `work` on the live session; a stage that dies mid-work makes it run again under a new plan. */
  async attempt<T>(work: (session: PipelineSession) => Promise<T>): Promise<T> {
    for (;;) {
      try {
        this.throwIfCancelled();
        if (!this.session) await this.start();
        return await work(this.session!);
      } catch (err) {
        const session = this.session;
        this.session = undefined;
        if (session) await session.abort(err as Error).catch(() => undefined);
        const stageDied = (err as { code?: string }).code === 'PIPELINE_FAILED';
        if (!stageDied || this.attempts > (this.options.retries ?? 2)) throw err;
        // The dead worker's Redis connection is gone, so the next plan counts only the living.
        await new Promise((r) => setTimeout(r, 1000));
        const workers = this.options.workers !== undefined ? Math.min(this.options.workers, await this.liveWorkers()) : await this.liveWorkers();
        this.budgets = new Array<number>(workers).fill(this.perWorker);
        this.log.warn({ attempt: this.attempts, workers, reason: (err as Error).message }, 'pipeline stage lost: running again under a new plan');
      }
    }
  }

  /** Ends the run: every stage reports and frees its worker. */
  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.close();
  }

  /** Gives the run up (its stages are told to stop). */
  async abort(error: Error): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.abort(error).catch(() => undefined);
  }

  private throwIfCancelled(): void {
    if (this.options.signal?.aborted) throw new ClusterError('CANCELLED', 'the pipeline run was cancelled', { where: this.baseId });
  }

  private async start(): Promise<void> {
    this.plan = await planPipeline(this.modelDir, this.budgets, this.options.plan, this.log);
    this.attempts++;
    // start() frees its stages itself when it fails.
    this.session = await PipelineSession.start({
      queue: this.options.queue,
      model: this.options.model,
      plan: this.plan,
      runId: this.attempts === 1 ? this.baseId : `${this.baseId}-r${this.attempts - 1}`,
      advertiseHost: this.options.advertiseHost,
      microBatch: this.options.microBatch,
      metrics: this.options.metrics,
      logger: this.log,
    });
  }

  private async liveWorkers(): Promise<number> {
    const workers = (await this.options.queue.queue.getWorkers()).length;
    if (workers < 1) throw new ClusterError('PIPELINE_FAILED', `no worker serves queue "${this.options.queue.name}"`, { where: 'pipeline' });
    return workers;
  }
}
