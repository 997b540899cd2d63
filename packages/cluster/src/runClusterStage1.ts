import { createLogger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import type { PlanOptions, StagePlan } from '@scaleot/model';
import type { JobQueue } from '@scaleot/queue';
import type { Stage1Result, Stage1StepLog } from '@scaleot/scaleot';
import { resolveArtifact } from './clusterConfig.js';
import { planPlacement, type Placement } from './planPlacement.js';
import { runDistributedStage1, type DistributedStage1Options } from './runDistributedStage1.js';
import { runPipelineStage1 } from './runPipelineStage1.js';
import type { WorkerRegistry } from './WorkerRegistry.js';

export interface ClusterStage1Options extends Omit<DistributedStage1Options, 'onStep'> {
  /** Where the live workers' memory budgets are read. */
  registry: WorkerRegistry;
  /** Queue of the `pipeline.stage` jobs (SCALEOT_JOB_ROUTES may route them apart). Default `queue`. */
  pipelineQueue?: JobQueue;
  /** Planner settings. Default: the planner's (320 MiB fixed overhead per process, …). */
  plan?: Omit<PlanOptions, 'budgets'>;
  /** Address the workers reach this process' pipeline inbox at (SCALEOT_ADVERTISE_HOST). Default 127.0.0.1. */
  advertiseHost?: string;
  /** Pipeline gauges (stages, per-stage memory and step time). */
  metrics?: ScaleotMetrics;
  /** After each step, with its wall-clock seconds, whichever way it ran. */
  onStep?: (entry: Stage1StepLog, seconds: number) => void;
}

export interface ClusterStage1Result extends Stage1Result {
  /** How the run was placed (and why). */
  placement: Placement;
  /** The pipeline's last plan (pipeline runs). */
  plan?: StagePlan;
}

/**
 * Stage 1 of a base model on the cluster, placed by the live workers' memory budgets: data-parallel
 * shard jobs (`runDistributedStage1`) when the model fits one worker, else a pipeline of stage workers
 * (`runPipelineStage1`, the stages cut from the budgets). Both run the one stage-1 loop, so the
 * artifacts are the same files either way. `signal`, `priority` and the ZeroMQ publisher settings apply
 * to the data-parallel path only.
 */
export async function runClusterStage1(options: ClusterStage1Options): Promise<ClusterStage1Result> {
  const log = options.logger ?? createLogger('cluster.stage1');
  const pipelineQueue = options.pipelineQueue ?? options.queue;
  const modelDir = resolveArtifact(options.storageDir, options.modelDir);
  const workers = await options.registry.list({ queue: pipelineQueue.name });
  const placement = await planPlacement(modelDir, workers, { plan: options.plan, logger: log });
  if (placement.mode === 'data-parallel') {
    const { registry: _registry, pipelineQueue: _pipelineQueue, plan: _plan, advertiseHost: _advertiseHost, metrics: _metrics, onStep, ...distributed } = options;
    const result = await runDistributedStage1({ ...distributed, onStep: onStep && ((entry, timing) => onStep(entry, timing.seconds)) });
    return { ...result, placement };
  }
  const { onStep, stopAfterRound, ...rest } = options;
  const result = await runPipelineStage1({
    ...rest,
    queue: pipelineQueue,
    budgets: placement.budgets,
    plan: options.plan,
    stopAfterStep: stopAfterRound,
    onStep: onStep && ((entry) => onStep(entry, entry.seconds)),
  });
  return { ...result, placement, plan: result.plan };
}
