import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import { planStages, readModelConfig, workerMemoryBytes, type PlanOptions, type StagePlan } from '@scaleot/model';
import { evaluateScored, resolveTask, type EvalResult, type TaskInput } from '@scaleot/offsite';
import type { JobQueue } from '@scaleot/queue';
import { Tokenizer } from '@scaleot/tokenizer';
import { resolveArtifact } from './clusterConfig.js';
import { ClusterError } from './ClusterError.js';
import { PipelineSession, type StageReady } from './PipelineSession.js';
import type { StageStats } from './pipelineStageCompute.js';

export interface PipelineEvaluationOptions {
  /** Queue of the stage workers. */
  queue: JobQueue;
  /** Model reference (absolute, or under `storageDir`; the workers resolve it under theirs). */
  model: string;
  storageDir: string;
  task: TaskInput;
  /** Data root of built-in task names. */
  dataRoot?: string;
  /** Memory budget per available worker (stage i on worker i). Default: `workers` × `workerMemoryBytes()`. */
  budgets?: number[];
  /** Workers available for stages when `budgets` is not given. Default: the workers connected to the queue. */
  workers?: number;
  /** Planner settings (overhead, activations, slack, per-stage weight cap). */
  plan?: Omit<PlanOptions, 'budgets'>;
  /** Evaluation limits of the protocol (as `scaleot eval`). */
  maxBlocks?: number;
  maxExamples?: number;
  /** Rows per protocol batch (default 8) and per micro-batch (default 1): a batch's micro-batches are in flight together. */
  batchSize?: number;
  microBatch?: number;
  advertiseHost?: string;
  metrics?: ScaleotMetrics;
  logger?: Logger;
  runId?: string;
  /** Runs again under a new plan (the workers still connected) after a stage died, this many times. Default 2. */
  retries?: number;
}

export interface PipelineEvaluationResult {
  result: EvalResult;
  plan: StagePlan;
  ready: StageReady[];
  /** Each stage's final figures (peak RSS, step and compute seconds, bytes moved). */
  stages: StageStats[];
  microBatches: number;
  /** Bytes that went stage to stage over the run (activations and their token rows). */
  interStageBytes: number;
  /** Seconds from routed stages to the last result (loading excluded). */
  seconds: number;
  /** Runs it took (1 + retries after a stage died); `plan` is the last one's. */
  attempts: number;
}

/** The plan for a model and a set of workers, logged (the coordinator's side of "plan, then run"). */
export async function planPipeline(modelDir: string, budgets: number[], options: Omit<PlanOptions, 'budgets'> = {}, logger?: Logger): Promise<StagePlan> {
  const config = await readModelConfig(modelDir);
  const plan = planStages(config, { ...options, budgets });
  (logger ?? createLogger('cluster.pipeline')).info(
    {
      model: modelDir,
      stages: plan.stages.map((s) => ({ stage: s.index, blocks: [s.from, s.to], weightBytes: s.weightBytes, estimatedBytes: s.estimatedBytes, budgetBytes: s.budgetBytes })),
      modelBytes: plan.modelBytes,
      fixedOverheadBytes: plan.fixedOverheadBytes,
      activationBytes: plan.activationBytes,
    },
    plan.stages.length === 1 ? 'pipeline plan: the model fits one worker' : `pipeline plan: ${plan.stages.length} stages`,
  );
  return plan;
}

/**
 * Evaluates a model by the fixture protocols across stage workers: plans the stages from the workers'
 * memory budgets, runs one `pipeline.stage` job per stage and scores the protocol's batches through
 * them. The protocol, batches and summation order are `evaluateModel`'s, so the value equals the
 * single-process evaluation up to float rounding.
 */
export async function runPipelineEvaluation(options: PipelineEvaluationOptions): Promise<PipelineEvaluationResult> {
  const log = options.logger ?? createLogger('cluster.pipeline');
  const modelDir = resolveArtifact(options.storageDir, options.model);
  const liveWorkers = async () => {
    const workers = (await options.queue.queue.getWorkers()).length;
    if (workers < 1) throw new ClusterError('PIPELINE_FAILED', `no worker serves queue "${options.queue.name}"`, { where: 'pipeline' });
    return workers;
  };
  const perWorker = options.budgets ? Math.min(...options.budgets) : workerMemoryBytes();
  let budgets = options.budgets ?? new Array<number>(options.workers ?? (await liveWorkers())).fill(perWorker);
  const config = await readModelConfig(modelDir);
  const task = await resolveTask(options.task, options.dataRoot);
  const tokenizer = await Tokenizer.fromDir(modelDir);
  const retries = options.retries ?? 2;
  const baseId = options.runId ?? `pipe-${randomBytes(4).toString('hex')}`;
  for (let attempt = 1; ; attempt++) {
    const plan = await planPipeline(modelDir, budgets, options.plan, log);
    let session: PipelineSession | undefined;
    try {
      session = await PipelineSession.start({
        queue: options.queue,
        model: options.model,
        plan,
        runId: attempt === 1 ? baseId : `${baseId}-r${attempt - 1}`,
        advertiseHost: options.advertiseHost,
        microBatch: options.microBatch,
        metrics: options.metrics,
        logger: log,
      });
      const started = performance.now();
      // The protocol is deterministic, so a run repeated from the start under a new plan scores the same.
      const result: EvalResult = await evaluateScored({ maxPositions: config.maxPositions, nll: session.nll }, task, tokenizer, { batchSize: options.batchSize ?? 8, maxBlocks: options.maxBlocks, maxExamples: options.maxExamples, label: 'pipeline eval', logger: log });
      const seconds = (performance.now() - started) / 1000;
      await session.close();
      log.info({ value: result.value, metric: result.metric, attempt, stages: session.stages.map((s) => ({ stage: s.stage, peakRssBytes: s.peakRssBytes, computeSeconds: s.computeSeconds })), interStageBytes: session.interStageBytes }, 'pipeline evaluation done');
      return { result, plan, ready: session.ready, stages: session.stages, microBatches: session.microBatches, interStageBytes: session.interStageBytes, seconds, attempts: attempt };
    } catch (err) {
      // start() frees its stages itself when it fails.
      if (session) await session.abort(err as Error).catch(() => undefined);
      const stageDied = (err as { code?: string }).code === 'PIPELINE_FAILED';
      if (!stageDied || attempt > retries) throw err;
      // The dead worker's Redis connection is gone, so the next plan counts only the living.
      await new Promise((r) => setTimeout(r, 1000));
      const workers = options.workers !== undefined ? Math.min(options.workers, await liveWorkers()) : await liveWorkers();
      budgets = new Array<number>(workers).fill(perWorker);
      log.warn({ attempt, workers, reason: (err as Error).message }, 'pipeline stage lost: running again under a new plan');
    }
  }
}
