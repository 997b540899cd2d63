import { atomicWriteJson, createLogger, type Logger } from '@scaleot/core';
import type { ScaleotMetrics } from '@scaleot/metrics';
import type { PlanOptions } from '@scaleot/model';
import { readAdapter } from '@scaleot/offsite';
import type { AnyJobPayload, JobKind, JobPayload, JobQueue } from '@scaleot/queue';
import { resolveArtifact } from './clusterConfig.js';
import type { JobRunner, RunJobOptions } from './JobRunner.js';
import { evalLimits, trainHyperOf, type EvaluateJobResult, type HyperRecord } from './jobSettings.js';
import { planPlacement } from './planPlacement.js';
import { runPipelineEvaluation } from './runPipelineEvaluation.js';
import { runPipelineTraining } from './runPipelineTraining.js';
import type { WorkerRegistry } from './WorkerRegistry.js';

export interface PlacingJobRunnerOptions {
  /** Runs every job of a model that fits one worker, and every other kind. */
  inner: JobRunner;
  /** Where the live workers' memory budgets are read. */
  registry: WorkerRegistry;
  /** Queue of the `pipeline.stage` jobs. */
  stageQueue: JobQueue;
  /** Shared storage: payload references resolve under it. */
  storageDir: string;
  /** Data root of built-in task names. */
  dataRoot?: string;
  /** Planner settings. Default: the planner's. */
  plan?: Omit<PlanOptions, 'budgets'>;
  /** Address the stage workers reach this process' pipeline inbox at (SCALEOT_ADVERTISE_HOST). Default 127.0.0.1. */
  advertiseHost?: string;
  metrics?: ScaleotMetrics;
  logger?: Logger;
}

/**
 * The coordinator's job runner for models of any size: a `tune` or `evaluate` job whose model (the
 * emulator, the full or plugged model) does not fit one worker runs here as a pipeline over stage
 * workers (`runPipelineTraining`, `runPipelineEvaluation`), with the job's own result and output
 * files; everything else goes to the inner runner as before. The request flow does not change.
 */
export class PlacingJobRunner implements JobRunner {
  private readonly log: Logger;
  private readonly running = new Map<string, Set<AbortController>>();

  constructor(private readonly options: PlacingJobRunnerOptions) {
    this.log = options.logger ?? createLogger('cluster.placement');
  }

  get mode(): JobRunner['mode'] {
    return this.options.inner.mode;
  }

  async run<T = unknown>(kind: JobKind, payload: AnyJobPayload, options: RunJobOptions = {}): Promise<T> {
    if (kind === 'tune' || kind === 'evaluate') {
      const target = kind === 'tune' ? (payload as JobPayload<'tune'>).emulator : (payload as JobPayload<'evaluate'>).model;
      const budgets = await this.pipelineBudgets(target, kind);
      if (budgets) return (await this.pipelined(kind, payload, budgets, options)) as T;
    }
    return this.options.inner.run<T>(kind, payload, options);
  }

  async cancelGroup(group: string): Promise<{ removed: number; signalled: number }> {
    const here = this.running.get(group) ?? new Set();
    for (const controller of here) controller.abort();
    const inner = await this.options.inner.cancelGroup(group);
    return { removed: inner.removed, signalled: inner.signalled + here.size };
  }

  close(): Promise<void> {
    for (const group of this.running.values()) for (const controller of group) controller.abort();
    return this.options.inner.close();
  }

  /** The budgets to plan a pipeline with when `target` does not fit one worker; undefined when it does (or no worker reported one). */
  private async pipelineBudgets(target: string, kind: JobKind): Promise<number[] | undefined> {
    const workers = await this.options.registry.list({ queue: this.options.stageQueue.name });
    const placement = await planPlacement(resolveArtifact(this.options.storageDir, target), workers, { plan: this.options.plan, work: kind, whole: 'a worker job', logger: this.log });
    return placement.mode === 'pipeline' ? placement.budgets : undefined;
  }

  private async pipelined(kind: 'tune' | 'evaluate', payload: AnyJobPayload, budgets: number[], options: RunJobOptions): Promise<unknown> {
    const controller = new AbortController();
    const group = options.group ?? '';
    if (!this.running.has(group)) this.running.set(group, new Set());
    this.running.get(group)!.add(controller);
    const { storageDir, dataRoot } = this.options;
    const common = { queue: this.options.stageQueue, storageDir, dataRoot, budgets, plan: this.options.plan, advertiseHost: this.options.advertiseHost, metrics: this.options.metrics, logger: this.log, signal: controller.signal };
    const path = (ref: string) => resolveArtifact(storageDir, ref);
    try {
      if (kind === 'tune') {
        const p = payload as JobPayload<'tune'>;
        const run = await runPipelineTraining({
          ...common, model: p.emulator, task: p.task, trainable: 'adapters', hyper: trainHyperOf(p.hyper as HyperRecord), adapterOutDir: path(p.output), overwrite: true,
          onStep: (info) => options.onProgress?.({ step: info.step, totalSteps: info.totalSteps, loss: info.loss }),
        });
        return { tuneId: p.tuneId, output: p.output, steps: run.train.steps, finalLoss: run.train.losses.at(-1) ?? null, stages: run.plan.stages.length };
      }
      const p = payload as JobPayload<'evaluate'>;
      const hyper = p.hyper as HyperRecord | undefined;
      const limits = evalLimits(hyper);
      let out: EvaluateJobResult;
      if (hyper?.fullFineTune === true) {
        // The upper bound of the report: every weight tuned on the task on the stages, then scored there.
        const run = await runPipelineTraining({ ...common, model: p.model, task: p.task, trainable: 'all', hyper: trainHyperOf(hyper), evaluate: limits });
        out = { ...run.evaluation!, evaluationId: p.evaluationId, fullFineTuned: true };
      } else {
        const adapter = typeof hyper?.adapter === 'string' ? await readAdapter(path(hyper.adapter)) : undefined;
        const run = await runPipelineEvaluation({ ...common, model: p.model, task: p.task, ...limits, weights: adapter?.tensors });
        out = { ...run.result, evaluationId: p.evaluationId };
      }
      if (p.output) await atomicWriteJson(path(p.output), out);
      return out;
    } finally {
      this.running.get(group)?.delete(controller);
      if (this.running.get(group)?.size === 0) this.running.delete(group);
    }
  }
}
