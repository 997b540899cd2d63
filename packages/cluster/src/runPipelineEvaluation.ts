import { createLogger } from '@scaleot/core';
import { readModelConfig, type StagePlan } from '@scaleot/model';
import { evaluateScored, resolveTask, type EvalResult, type TaskInput } from '@scaleot/offsite';
import { Tokenizer } from '@scaleot/tokenizer';
import { resolveArtifact } from './clusterConfig.js';
import { PipelineRun, type PipelineRunOptions } from './PipelineRun.js';
import { sendWeights, stagesHolding } from './stageWeights.js';
import type { StageReady } from './PipelineSession.js';
import type { StageStats } from './pipelineStageCompute.js';

export interface PipelineEvaluationOptions extends PipelineRunOptions {
  task: TaskInput;
  /** Data root of built-in task names. */
  dataRoot?: string;
  /** Evaluation limits of the protocol (as `scaleot eval`). */
  maxBlocks?: number;
  maxExamples?: number;
  /** Rows per protocol batch (default 8); `microBatch` rows (default 1) travel together: a batch's micro-batches are in flight together. */
  batchSize?: number;
  /** Weights that replace the model's own on the stages holding them (a tuned adapter's blocks), by canonical name. */
  weights?: ReadonlyMap<string, { data: Float32Array; shape: readonly number[] }>;
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

/**
 * Evaluates a model by the fixture protocols across stage workers: plans the stages from the workers'
 * memory budgets, runs one `pipeline.stage` job per stage and scores the protocol's batches through
 * them. The protocol, batches and summation order are `evaluateModel`'s, so the value equals the
 * single-process evaluation up to float rounding; a stage that dies makes the protocol run again under
 * a new plan (it is deterministic, so it scores the same).
 */
export async function runPipelineEvaluation(options: PipelineEvaluationOptions): Promise<PipelineEvaluationResult> {
  const log = options.logger ?? createLogger('cluster.pipeline');
  const modelDir = resolveArtifact(options.storageDir, options.model);
  const config = await readModelConfig(modelDir);
  const task = await resolveTask(options.task, options.dataRoot);
  const tokenizer = await Tokenizer.fromDir(modelDir);
  const run = await PipelineRun.open({ ...options, logger: log });
  try {
    let started = 0;
    const result: EvalResult = await run.attempt(async (session) => {
      if (options.weights) await sendWeights(session, run.plan, options.weights, await stagesHolding(modelDir));
      started = performance.now();
      return evaluateScored({ maxPositions: config.maxPositions, nll: session.nll }, task, tokenizer, { batchSize: options.batchSize ?? 8, maxBlocks: options.maxBlocks, maxExamples: options.maxExamples, label: 'pipeline eval', logger: log });
    });
    const seconds = (performance.now() - started) / 1000;
    const session = run.session!;
    await run.close();
    log.info({ value: result.value, metric: result.metric, attempts: run.attempts, stages: session.stages.map((s) => ({ stage: s.stage, peakRssBytes: s.peakRssBytes, computeSeconds: s.computeSeconds })), interStageBytes: session.interStageBytes }, 'pipeline evaluation done');
    return { result, plan: run.plan, ready: session.ready, stages: session.stages, microBatches: session.microBatches, interStageBytes: session.interStageBytes, seconds, attempts: run.attempts };
  } catch (err) {
    await run.abort(err as Error);
    throw err;
  }
}
