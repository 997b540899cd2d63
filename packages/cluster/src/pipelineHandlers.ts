import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteJson, createLogger, type Logger } from '@scaleot/core';
import { EMULATOR_MANIFEST, evaluate, fullFineTune, plugIn, tuneAdapter, type EvalResult, type TrainHyperParameters } from '@scaleot/offsite';
import { TRAIN_HYPER_KEYS, type JobContext, type JobHandlers, type JobPayload } from '@scaleot/queue';
import { buildScaleotEmulator } from '@scaleot/scaleot';
import { ClusterError } from './ClusterError.js';
import { resolveArtifact } from './clusterConfig.js';

export interface PipelineHandlerOptions {
  /** Shared storage: relative references resolve under it. */
  storageDir: string;
  /** Data root of built-in task names. Default `<storageDir>/data` when it exists, else ./data. */
  dataRoot?: string;
  logger?: Logger;
}

/** What an evaluate job returns (and writes to its `output`, when given). */
export interface EvaluateJobResult extends EvalResult {
  evaluationId: string;
  /** Set for the full fine-tuning baseline (`hyper.fullFineTune`). */
  fullFineTuned?: boolean;
}

type HyperRecord = Record<string, number | string | boolean>;

/** The training fields of a payload's `hyper` record (numbers only; other keys are job switches). */
export function trainHyperOf(hyper: HyperRecord | undefined): Partial<TrainHyperParameters> {
  const out: Record<string, number> = {};
  for (const key of TRAIN_HYPER_KEYS) {
    const value = hyper?.[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ClusterError('BAD_OPTION', `hyper.${key} must be a number, got ${JSON.stringify(value)}`, { where: `hyper.${key}`, unrecoverable: true });
    out[key] = value;
  }
  return out as Partial<TrainHyperParameters>;
}

function evalLimits(hyper: HyperRecord | undefined): { batchSize?: number; maxBlocks?: number; maxExamples?: number } {
  const pick = (key: string) => (typeof hyper?.[key] === 'number' ? (hyper[key] as number) : undefined);
  return { batchSize: pick('evalBatchSize'), maxBlocks: pick('maxBlocks'), maxExamples: pick('maxExamples') };
}

/**
 * Handlers of the job kinds after stage 1: `emulator.build` (ScaleOT stage 2), `tune` (adapter tuning on
 * an emulator), `plugin` and `evaluate` (also the full fine-tuning baseline). Each is a thin call into
 * @scaleot/scaleot / @scaleot/offsite over artifact paths in shared storage; outputs are written
 * atomically by those functions, so a job re-run after a crash replaces a partial nothing.
 */
export function pipelineHandlers(options: PipelineHandlerOptions): JobHandlers {
  const log = options.logger ?? createLogger('cluster.pipeline');
  const path = (ref: string) => resolveArtifact(options.storageDir, ref);
  const dataRoot = options.dataRoot ?? (existsSync(join(options.storageDir, 'data')) ? join(options.storageDir, 'data') : undefined);
  const report = (context: Pick<JobContext, 'progress'> | undefined, value: object) => void context?.progress(value).catch(() => undefined);

  return {
    'emulator.build': async (payload: JobPayload<'emulator.build'>) => {
      const result = await buildScaleotEmulator({ modelDir: path(payload.model), stage1Dir: path(payload.stage1), outDir: path(payload.output), nAdapter: payload.adapterBlocks, alpha: payload.alpha, beta: payload.beta, overwrite: true });
      log.info({ emulator: payload.emulatorId, alpha: payload.alpha, beta: payload.beta }, 'emulator built');
      return { emulatorId: payload.emulatorId, output: payload.output, plan: result.plan };
    },
    tune: async (payload: JobPayload<'tune'>, context?: JobContext<'tune'>) => {
      const outDir = path(payload.output);
      const result = await tuneAdapter({
        emulatorDir: path(payload.emulator),
        task: payload.task,
        dataRoot,
        outDir,
        hyper: trainHyperOf(payload.hyper),
        overwrite: true,
        // Resumable: a job picked up again after its worker died continues from the last checkpoint.
        checkpointDir: `${outDir}.checkpoint`,
        checkpointEvery: 10,
        resume: true,
        onStep: (info) => report(context, { step: info.step, totalSteps: info.totalSteps, loss: info.loss }),
      });
      return { tuneId: payload.tuneId, output: payload.output, steps: result.train.steps, finalLoss: result.train.losses.at(-1) ?? null };
    },
    plugin: async (payload: JobPayload<'plugin'>) => {
      const result = await plugIn({ modelDir: path(payload.model), adapterDir: path(payload.adapters), outDir: path(payload.output), overwrite: true });
      return { pluginId: payload.pluginId, output: payload.output, replaced: result.replaced.length };
    },
    evaluate: async (payload: JobPayload<'evaluate'>, context?: JobContext<'evaluate'>) => {
      const hyper = payload.hyper as HyperRecord | undefined;
      const target = path(payload.model);
      const limits = evalLimits(hyper);
      let modelDir = target;
      let fullFineTuned = false;
      if (hyper?.fullFineTune === true) {
        // The upper bound of the report: every weight tuned on the task, then evaluated.
        const tunedDir = payload.output ? `${path(payload.output)}.model` : join(options.storageDir, 'tmp', `fft-${payload.evaluationId}`);
        await fullFineTune({ modelDir: target, task: payload.task, dataRoot, outDir: tunedDir, hyper: trainHyperOf(hyper), onStep: (info) => report(context, { step: info.step, totalSteps: info.totalSteps, loss: info.loss }) });
        modelDir = tunedDir;
        fullFineTuned = true;
      }
      const isEmulator = existsSync(join(modelDir, EMULATOR_MANIFEST));
      const adapter = typeof hyper?.adapter === 'string' ? path(hyper.adapter) : undefined;
      const result = await evaluate({
        ...(isEmulator ? { emulatorDir: modelDir } : { modelDir }),
        ...(adapter ? { adapterDir: adapter } : {}),
        task: payload.task,
        dataRoot,
        ...limits,
        logger: log,
      });
      const out: EvaluateJobResult = { ...result, evaluationId: payload.evaluationId, ...(fullFineTuned ? { fullFineTuned } : {}) };
      if (payload.output) await atomicWriteJson(path(payload.output), out);
      return out;
    },
  };
}
