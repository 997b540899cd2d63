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
  let budgets = options.budgets;
  if (!budgets) {
    const workers = options.workers ?? (await options.queue.queue.getWorkers()).length;
    if (workers < 1) throw new ClusterError('PIPELINE_FAILED', `no worker serves queue "${options.queue.name}"`, { where: 'pipeline' });
    budgets = new Array<number>(workers).fill(workerMemoryBytes());
  }
  const plan = await planPipeline(modelDir, budgets, options.plan, log);
  const config = await readModelConfig(modelDir);
  const task = await resolveTask(options.task, options.dataRoot);
  const tokenizer = await Tokenizer.fromDir(modelDir);
  const session = await PipelineSession.start({
    queue: options.queue,
    model: options.model,
    plan,
    runId: options.runId ?? `pipe-${randomBytes(4).toString('hex')}`,
    advertiseHost: options.advertiseHost,
    microBatch: options.microBatch,
    metrics: options.metrics,
    logger: log,
  });
  const started = performance.now();
  let result: EvalResult;
  try {
    result = await evaluateScored({ maxPositions: config.maxPositions, nll: session.nll }, task, tokenizer, { batchSize: options.batchSize ?? 8, maxBlocks: options.maxBlocks, maxExamples: options.maxExamples, label: 'pipeline eval', logger: log });
  } catch (err) {
    await session.close().catch(() => undefined);
    throw err;
  }
  const seconds = (performance.now() - started) / 1000;
  await session.close();
  log.info({ value: result.value, metric: result.metric, stages: session.stages.map((s) => ({ stage: s.stage, peakRssBytes: s.peakRssBytes, computeSeconds: s.computeSeconds })), interStageBytes: session.interStageBytes }, 'pipeline evaluation done');
  return { result, plan, ready: session.ready, stages: session.stages, microBatches: session.microBatches, interStageBytes: session.interStageBytes, seconds };
}
