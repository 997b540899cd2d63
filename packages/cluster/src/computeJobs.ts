// Job bodies that run inside a compute thread (ComputeExecutor), never on a worker's event loop.
// Each export is `(args, ctx) => result` over structured-cloneable values; module-level state (the
// frozen base models, the current harmonizers) lives as long as the thread.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteJson, createLogger } from '@scaleot/core';
import type { ComputeTaskContext } from '@scaleot/model';
import { EMULATOR_MANIFEST, evaluate, fullFineTune, plugIn, tuneAdapter } from '@scaleot/offsite';
import type { JobPayload } from '@scaleot/queue';
import { buildScaleotEmulator, Harmonizer, harmonizerGradientStep, rolloutLoss } from '@scaleot/scaleot';
import type * as tf from '@tensorflow/tfjs';
import { resolveArtifact } from './clusterConfig.js';
import { ModelCache } from './ModelCache.js';
import { evalLimits, trainHyperOf, type EvaluateJobResult, type HyperRecord } from './jobSettings.js';
import type { Stage1ParamsMeta } from './stage1Protocol.js';
import { readTokenStream, windowBatch } from './tokenStreams.js';

/** Where a pipeline job's references resolve. */
export interface JobStorage {
  storageDir: string;
  dataRoot?: string;
}

export interface PipelineJobArgs<K extends 'emulator.build' | 'tune' | 'plugin' | 'evaluate'> {
  storage: JobStorage;
  payload: JobPayload<K>;
}

const log = createLogger('cluster.compute');
const path = (storage: JobStorage, ref: string) => resolveArtifact(storage.storageDir, ref);

export async function emulatorBuildJob({ storage, payload }: PipelineJobArgs<'emulator.build'>): Promise<unknown> {
  const result = await buildScaleotEmulator({ modelDir: path(storage, payload.model), stage1Dir: path(storage, payload.stage1), outDir: path(storage, payload.output), nAdapter: payload.adapterBlocks, alpha: payload.alpha, beta: payload.beta, overwrite: true });
  log.info({ emulator: payload.emulatorId, alpha: payload.alpha, beta: payload.beta }, 'emulator built');
  return { emulatorId: payload.emulatorId, output: payload.output, plan: result.plan };
}

export async function tuneJob({ storage, payload }: PipelineJobArgs<'tune'>, ctx: ComputeTaskContext): Promise<unknown> {
  const outDir = path(storage, payload.output);
  const result = await tuneAdapter({
    emulatorDir: path(storage, payload.emulator),
    task: payload.task,
    dataRoot: storage.dataRoot,
    outDir,
    hyper: trainHyperOf(payload.hyper),
    overwrite: true,
    // Resumable: a job picked up again after its worker died (or was drained) continues from the last checkpoint.
    checkpointDir: `${outDir}.checkpoint`,
    checkpointEvery: 10,
    resume: true,
    onStep: (info) => ctx.progress({ step: info.step, totalSteps: info.totalSteps, loss: info.loss }),
  });
  return { tuneId: payload.tuneId, output: payload.output, steps: result.train.steps, finalLoss: result.train.losses.at(-1) ?? null };
}

export async function pluginJob({ storage, payload }: PipelineJobArgs<'plugin'>): Promise<unknown> {
  const result = await plugIn({ modelDir: path(storage, payload.model), adapterDir: path(storage, payload.adapters), outDir: path(storage, payload.output), overwrite: true });
  return { pluginId: payload.pluginId, output: payload.output, replaced: result.replaced.length };
}

export async function evaluateJob({ storage, payload }: PipelineJobArgs<'evaluate'>, ctx: ComputeTaskContext): Promise<EvaluateJobResult> {
  const hyper = payload.hyper as HyperRecord | undefined;
  const target = path(storage, payload.model);
  let modelDir = target;
  let fullFineTuned = false;
  if (hyper?.fullFineTune === true) {
    // The upper bound of the report: every weight tuned on the task, then evaluated.
    const tunedDir = payload.output ? `${path(storage, payload.output)}.model` : join(storage.storageDir, 'tmp', `fft-${payload.evaluationId}`);
    await fullFineTune({ modelDir: target, task: payload.task, dataRoot: storage.dataRoot, outDir: tunedDir, hyper: trainHyperOf(hyper), onStep: (info) => ctx.progress({ step: info.step, totalSteps: info.totalSteps, loss: info.loss }) });
    modelDir = tunedDir;
    fullFineTuned = true;
  }
  const isEmulator = existsSync(join(modelDir, EMULATOR_MANIFEST));
  const adapter = typeof hyper?.adapter === 'string' ? path(storage, hyper.adapter) : undefined;
  const result = await evaluate({
    ...(isEmulator ? { emulatorDir: modelDir } : { modelDir }),
    ...(adapter ? { adapterDir: adapter } : {}),
    task: payload.task,
    dataRoot: storage.dataRoot,
    ...evalLimits(hyper),
    logger: log,
  });
  const out: EvaluateJobResult = { ...result, evaluationId: payload.evaluationId, ...(fullFineTuned ? { fullFineTuned } : {}) };
  if (payload.output) await atomicWriteJson(path(storage, payload.output), out);
  return out;
}

/** One stage-1 compute request: the round's parameters (already fetched by the job) and its windows. */
export interface Stage1ComputeArgs {
  /** Resolved base model directory. */
  modelDir: string;
  /** Identifies the parameter version: harmonizers are rebuilt only when it changes. */
  paramsKey: string;
  weights: Map<string, Float32Array>;
  meta: Pick<Stage1ParamsMeta, 'middle' | 'rank' | 'eps' | 'mask' | 'alignWeight' | 'microBatchSize' | 'tokens' | 'rows'>;
  /** Resolved token-stream file. */
  dataset: string;
  windowIndices: number[];
  windowLength?: number;
  /** Rollouts: the candidate mask (default: the round's mask). */
  mask?: number[];
}

export interface Stage1ShardCompute {
  names: string[];
  shapes: number[][];
  grads: Float32Array[];
  nllSum: number;
  tokens: number;
  alignSum: number;
  rows: number;
}

const models = new ModelCache();
let current: { key: string; harmonizers: Map<number, Harmonizer> } | undefined;
const streams = new Map<string, Promise<Int32Array>>();

async function stage1Inputs(args: Stage1ComputeArgs) {
  const model = await models.get(args.modelDir);
  if (current?.key !== args.paramsKey) {
    for (const h of current?.harmonizers.values() ?? []) h.dispose();
    current = undefined;
    const harmonizers = new Map<number, Harmonizer>();
    for (const i of args.meta.middle) harmonizers.set(i, new Harmonizer(i, model.config.hiddenSize, { weights: args.weights, rank: args.meta.rank, eps: args.meta.eps }));
    current = { key: args.paramsKey, harmonizers };
  }
  let stream = streams.get(args.dataset);
  if (!stream) {
    stream = readTokenStream(args.dataset);
    stream.catch(() => streams.delete(args.dataset));
    streams.set(args.dataset, stream);
  }
  const tokens = await stream;
  return { model, harmonizers: current.harmonizers, batch: windowBatch(tokens, args.windowIndices, args.windowLength ?? tokens.length) };
}

/** Harmonizer gradients of one shard of a round's batch (normalised by the whole batch). */
export async function stage1ShardCompute(args: Stage1ComputeArgs): Promise<Stage1ShardCompute> {
  const { model, harmonizers, batch } = await stage1Inputs(args);
  const step = harmonizerGradientStep(model, harmonizers, args.meta.mask, batch, {
    alignWeight: args.meta.alignWeight,
    microBatchSize: args.meta.microBatchSize,
    tokenNormalizer: args.meta.tokens,
    rowsNormalizer: args.meta.rows,
  });
  const names: string[] = [];
  const shapes: number[][] = [];
  const grads: Float32Array[] = [];
  try {
    for (const [name, grad] of step.grads) {
      names.push(name);
      shapes.push(grad.shape.slice());
      grads.push(((await (grad as tf.Tensor).data()) as Float32Array).slice());
    }
  } finally {
    for (const grad of step.grads.values()) grad.dispose();
  }
  return { names, shapes, grads, nllSum: step.nllSum, tokens: step.tokens, alignSum: step.alignSum, rows: batch.rows };
}

/** Mean LM loss of the batch under one candidate mask. */
export async function stage1RolloutCompute(args: Stage1ComputeArgs): Promise<{ loss: number }> {
  const { model, harmonizers, batch } = await stage1Inputs(args);
  return { loss: rolloutLoss(model, harmonizers, args.mask ?? args.meta.mask, batch, args.meta.microBatchSize) };
}
