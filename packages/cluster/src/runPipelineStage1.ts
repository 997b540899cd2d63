import { join, resolve } from 'node:path';
import { createLogger } from '@scaleot/core';
import { readModelConfig, type StagePlan } from '@scaleot/model';
import { sourceModelInfo } from '@scaleot/offsite';
import { resolveStage1Hyper, stage1Loop, stage1Streams, type Stage1HyperParameters, type Stage1Result, type Stage1StepLog } from '@scaleot/scaleot';
import { PipelineRun, type PipelineRunOptions } from './PipelineRun.js';
import type { PipelineSession, StageReady } from './PipelineSession.js';
import { PipelineStage1Executor, type PipelineRoundCompute } from './PipelineStage1Executor.js';
import type { StageStats } from './pipelineStageCompute.js';

export interface PipelineStage1Options extends Partial<Stage1HyperParameters>, Omit<PipelineRunOptions, 'model' | 'microBatch'> {
  /** The full model (HF dir) as the workers resolve it (absolute, or under their storage dir). */
  modelDir: string;
  /** Stage-1 artifact directory (same files as runStage1 writes). */
  outDir: string;
  /** Pre-tokenised streams (else `corpus` is tokenised). */
  streams?: { train: Int32Array; val: Int32Array };
  /** LM corpus. Default 'sotu'. */
  corpus?: string;
  dataRoot?: string;
  maxDocuments?: number;
  /** Default `<outDir>/checkpoint`. */
  checkpointDir?: string;
  /** Continue from the checkpoint (a single-process one too: the state is the loop's). Default true. */
  resume?: boolean;
  /** Checkpoint every N steps. Default 1: a step of a model this size is expensive. */
  checkpointEvery?: number;
  /** End after this step (the checkpoint holds the state). Default: all. */
  stopAfterStep?: number;
  onStep?: (entry: Stage1StepLog, compute: PipelineRoundCompute) => void;
}

export interface PipelineStage1Result extends Stage1Result {
  /** The last plan the run used. */
  plan: StagePlan;
  /** Pipeline sessions started (1 + replans after a stage died). */
  attempts: number;
  /** The last session's stages as they reported ready (address, load seconds). */
  ready: StageReady[];
  /** The last session's final figures per stage (peak RSS over load and steps, compute seconds, bytes sent stage to stage). */
  stages: StageStats[];
  /** Micro-batches the last session carried (gradient and rollout ones). */
  microBatches: number;
  /** Bytes the last session's stages sent stage to stage, as `PipelineSession.interStageBytes` counts them. */
  interStageBytes: number;
}

/**
 * ScaleOT stage 1 for a model larger than one worker: the one stage-1 loop (same seeded draws, update,
 * reinforce step, checkpoints and artifacts as `runStage1`) over a pipeline of stage workers planned
 * from their memory budgets. Same seed, same run as a single process, up to float rounding.
 */
export async function runPipelineStage1(opts: PipelineStage1Options): Promise<PipelineStage1Result> {
  const log = opts.logger ?? createLogger('cluster.stage1');
  const outDir = resolve(opts.outDir);
  const modelPath = resolve(opts.storageDir, opts.modelDir);
  const source = await sourceModelInfo(modelPath);
  const modelConfig = await readModelConfig(modelPath);
  const { hyper, layout } = resolveStage1Hyper(opts, modelConfig);
  const streams = await stage1Streams(opts, modelPath, hyper.seqLen);
  const pipeline = await PipelineRun.open({ ...opts, model: opts.modelDir, logger: log });
  const executor = new PipelineStage1Executor(pipeline);
  // The session that ran the last step: its stages' final figures arrive when the loop closes it.
  let lastSession: PipelineSession | undefined;
  const result = await stage1Loop(executor, {
    hyper,
    layout,
    modelConfig,
    source,
    streams,
    outDir,
    checkpointDir: resolve(opts.checkpointDir ?? join(outDir, 'checkpoint')),
    resume: opts.resume,
    checkpointEvery: opts.checkpointEvery ?? 1,
    stopAfterStep: opts.stopAfterStep,
    manifestExtras: { pipeline: { stages: pipeline.plan.stages.map((s) => [s.from, s.to]) } },
    logger: log,
    onStep: (entry) => {
      lastSession = pipeline.session ?? lastSession;
      opts.onStep?.(entry, executor.last);
    },
  });
  return { ...result, plan: pipeline.plan, attempts: pipeline.attempts, ready: lastSession?.ready ?? [], stages: lastSession?.stages ?? [], microBatches: lastSession?.microBatches ?? 0, interStageBytes: lastSession?.interStageBytes ?? 0 };
}
