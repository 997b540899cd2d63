import { createLogger, type Logger } from '@scaleot/core';
import type { PlanOptions, StagePlan } from '@scaleot/model';
import { planPipeline } from './planPipeline.js';
import type { WorkerRecord } from './WorkerRegistry.js';

/** How work on a model (stage 1, tuning, evaluation) runs on the workers there are. */
export type Placement =
  | {
      /** As when every model fit one worker: jobs that load the whole model (stage 1: data-parallel shard jobs). */
      mode: 'data-parallel';
      /** Why: the model fits one worker, or no worker reported a budget. */
      reason: 'fits-one-worker' | 'no-budgets';
      workers: WorkerRecord[];
      /** The one-stage plan (absent when no worker reported a budget). */
      plan?: StagePlan;
    }
  | {
      /** Pipeline stages (`runPipelineStage1`, `runPipelineTraining`, `runPipelineEvaluation`): each stage worker loads only its blocks. */
      mode: 'pipeline';
      workers: WorkerRecord[];
      plan: StagePlan;
      /** The budgets the plan was cut for (one per live worker). */
      budgets: number[];
    };

export interface PlacementOptions {
  /** Planner settings (fixed overhead, activations, slack, per-stage weight cap). Default: the planner's. */
  plan?: Omit<PlanOptions, 'budgets'>;
  /** What is placed and how it runs when the model fits one worker, for the log lines. Default 'stage 1' run as 'data-parallel shards'. */
  work?: string;
  whole?: string;
  logger?: Logger;
}

/**
 * Chooses how work on a model runs from the live workers' memory budgets (their `WorkerRegistry` entries):
 * a model that fits one worker keeps the data-parallel shards, one that does not runs as a pipeline of
 * stage workers. A stage job goes to whichever worker takes it, so every worker is planned with the
 * smallest budget reported. Throws `PipelinePlanError` `DOES_NOT_FIT` (naming the workers it would take)
 * when even all of them cannot hold the model. No worker with a budget (workers of a release without the
 * registry, or none started yet): data-parallel, as before.
 */
export async function planPlacement(modelDir: string, workers: WorkerRecord[], options: PlacementOptions = {}): Promise<Placement> {
  const log = options.logger ?? createLogger('cluster.placement');
  const work = options.work ?? 'stage 1';
  const whole = options.whole ?? 'data-parallel shards';
  if (workers.length === 0) {
    log.warn({ model: modelDir }, `${work}: ${whole} (no worker reported a memory budget, so no pipeline can be planned)`);
    return { mode: 'data-parallel', reason: 'no-budgets', workers };
  }
  const smallest = Math.min(...workers.map((w) => w.memoryBytes));
  const budgets = new Array<number>(workers.length).fill(smallest);
  const plan = await planPipeline(modelDir, budgets, options.plan, log);
  const stages = plan.stages.map((s) => ({ stage: s.index, blocks: [s.from, s.to], weightBytes: s.weightBytes, estimatedBytes: s.estimatedBytes }));
  const context = { model: modelDir, workers: workers.length, budgetBytes: smallest, modelBytes: plan.modelBytes, stages };
  if (plan.stages.length === 1) {
    log.info({ ...context, mode: 'data-parallel' }, `${work}: ${whole} (the model fits one worker)`);
    return { mode: 'data-parallel', reason: 'fits-one-worker', workers, plan };
  }
  log.info({ ...context, mode: 'pipeline' }, `${work}: pipeline of ${plan.stages.length} stages (the model does not fit one worker)`);
  return { mode: 'pipeline', workers, plan, budgets };
}
