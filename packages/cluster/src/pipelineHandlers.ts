import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, type Logger } from '@scaleot/core';
import { ComputeExecutor } from '@scaleot/model';
import type { JobContext, JobHandlers, JobPayload } from '@scaleot/queue';
import type { JobStorage } from './computeJobs.js';
import { ClusterError } from './ClusterError.js';
import { trainHyperOf } from './jobSettings.js';
import type { PipelineStageArgs } from './pipelineStageCompute.js';

export { trainHyperOf, type EvaluateJobResult } from './jobSettings.js';

export interface PipelineHandlerOptions {
  /** Shared storage: relative references resolve under it. */
  storageDir: string;
  /** Data root of built-in task names. Default `<storageDir>/data` when it exists, else ./data. */
  dataRoot?: string;
  /** Where the jobs' compute runs. Default: a new ComputeExecutor (one thread, idle threads do not hold the process). */
  compute?: ComputeExecutor;
  /** Host a pipeline stage's inbox is reached at (`SCALEOT_ADVERTISE_HOST`, the pod IP). Default 127.0.0.1. */
  advertiseHost?: string;
  /** A pipeline stage ends with TIMEOUT after this long without a message. Default 10 minutes. */
  pipelineIdleTimeoutMs?: number;
  logger?: Logger;
}

/** The thread-side job bodies (loaded by the compute thread, from dist). */
export const COMPUTE_JOBS = new URL('./computeJobs.js', import.meta.url);
/** The thread-side body of a `pipeline.stage` job. */
export const PIPELINE_STAGE_COMPUTE = new URL('./pipelineStageCompute.js', import.meta.url);

type PipelineKind = 'emulator.build' | 'tune' | 'plugin' | 'evaluate';

/**
 * Handlers of the job kinds after stage 1: `emulator.build` (ScaleOT stage 2), `tune` (adapter tuning on
 * an emulator), `plugin` and `evaluate` (also the full fine-tuning baseline). Each runs its body
 * (`computeJobs.ts`) on the compute executor's thread, so the worker's event loop renews job locks and
 * answers health checks meanwhile, and the job's abort signal (a cancelled request, a closing worker
 * told to stop) terminates the compute at once. Outputs are written atomically, so a job re-run after a
 * crash replaces a partial nothing.
 */
export function pipelineHandlers(options: PipelineHandlerOptions): JobHandlers {
  const log = options.logger ?? createLogger('cluster.pipeline');
  const compute = options.compute ?? new ComputeExecutor({ logger: log });
  const storage: JobStorage = { storageDir: options.storageDir, dataRoot: options.dataRoot ?? (existsSync(join(options.storageDir, 'data')) ? join(options.storageDir, 'data') : undefined) };
  const run = <K extends PipelineKind>(exportName: string, payload: JobPayload<K>, context?: Pick<JobContext, 'progress' | 'signal'>) => {
    // Bad settings fail here, before any thread work starts.
    if (payload && typeof payload === 'object' && 'hyper' in payload) trainHyperOf(payload.hyper as Record<string, number>);
    return compute.run({ module: COMPUTE_JOBS, exportName, args: { storage, payload } }, { signal: context?.signal, onProgress: (value) => void context?.progress(value as object).catch(() => undefined) });
  };
  return {
    'emulator.build': (payload, context) => run('emulatorBuildJob', payload, context),
    tune: (payload, context) => run('tuneJob', payload, context),
    plugin: (payload, context) => run('pluginJob', payload, context),
    evaluate: (payload, context) => run('evaluateJob', payload, context),
    // One stage of a model larger than one worker: the thread holds the stage and its sockets until the
    // coordinator ends the run (the job's lock renews here meanwhile; its abort signal ends the thread).
    'pipeline.stage': async (payload, context) => {
      // A stage job BullMQ re-queued because its worker died must not come back on its own: the run
      // lost that stage's in-flight activations, and the coordinator re-plans over the living workers.
      if ((context?.job?.stalledCounter ?? 0) > 0) {
        throw new ClusterError('PIPELINE_FAILED', `pipeline stage ${payload.stageIndex} of run ${payload.runId} lost its worker; the coordinator runs again under a new plan`, { where: 'pipeline.stage', unrecoverable: true });
      }
      const advertiseHost = options.advertiseHost ?? '127.0.0.1';
      const args: PipelineStageArgs = {
        storageDir: options.storageDir,
        payload,
        advertiseHost,
        bindHost: advertiseHost === '127.0.0.1' ? '127.0.0.1' : '0.0.0.0',
        idleTimeoutMs: options.pipelineIdleTimeoutMs ?? 600_000,
      };
      return compute.run({ module: PIPELINE_STAGE_COMPUTE, exportName: 'pipelineStageJob', args }, { signal: context?.signal, onProgress: (value) => void context?.progress(value as object).catch(() => undefined) });
    },
  };
}
