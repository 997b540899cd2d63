import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Progress, type Logger } from '@scaleot/core';
import { encodeSafetensors, SafetensorsFile, type WriteTensor } from '@scaleot/checkpoint';
import { accumulateGradients, AdamW, clipByGlobalNormAsync, DataParallelTrainer, warmupCosine, type CausalLM, type DataParallelTrainerOptions, type TokenBatch } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { writeArtifactDir } from './artifactDir.js';
import { shiftedLossSum } from './lmMath.js';
import { OffsiteError } from './OffsiteError.js';
import type { TaskBatcher, TaskBatcherState } from './TaskBatcher.js';

/** Optimisation hyper-parameters shared by adapter tuning, full fine-tuning and distillation. */
export interface TrainHyperParameters {
  /** Optimizer steps. Default 300. */
  steps: number;
  /** Rows (windows or examples) per step. Default 16. */
  batchSize: number;
  /** Rows per forward/backward pass; gradients are accumulated, token-weighted. Default 4 (bounds the wasm heap). */
  microBatchSize: number;
  /** LM window: tokens read per row (each window holds seqLen + 1 tokens). Default: the model's n_positions. */
  seqLen?: number;
  /** Peak learning rate. Default 3e-4. */
  lr: number;
  /** Linear warmup steps. Default 20. */
  warmupSteps: number;
  /** Cosine floor as a fraction of lr. Default 0.1. */
  finalLrFraction: number;
  /** Max global gradient norm. Default 1.0. */
  gradClip: number;
  /** AdamW decoupled weight decay on matrices. Default 0.01 (torch's AdamW default). */
  weightDecay: number;
  /** Seeds data sampling (and LoRA init). Default 0. */
  seed: number;
  /** Train on the first N rows of the train split only. Default: all. */
  maxTrainRows?: number;
}

export const DEFAULT_TRAIN: TrainHyperParameters = {
  steps: 300,
  batchSize: 16,
  microBatchSize: 4,
  lr: 3e-4,
  warmupSteps: 20,
  finalLrFraction: 0.1,
  gradClip: 1.0,
  weightDecay: 0.01,
  seed: 0,
};

export interface TrainStepInfo {
  /** 1-based step just taken. */
  step: number;
  totalSteps: number;
  /** Mean loss per target token over the step's batch (before the update). */
  loss: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

/**
 * Where a run's gradients are computed when not on this thread (Ray Train's backend): data-parallel
 * replicas, or a pipeline of stage workers for a model larger than one. The loop keeps the variables
 * and the optimizer; the executor gets the trainable weights before the first step and after every
 * update.
 */
export interface GradientExecutor {
  /** Σ loss over the micro-batches (unnormalised) and the gradients of Σ loss / `normalizer`, by variable name. */
  gradients(parts: TokenBatch[], normalizer: number): Promise<{ grads: Map<string, tf.Tensor>; lossSum: number }>;
  loadTrainable(values: ReadonlyMap<string, Float32Array>): Promise<void>;
}

export interface TrainLoopOptions {
  /** Where resumable state goes (trainable weights + AdamW moments + step + data position). Default: none. */
  checkpointDir?: string;
  /** Save state every N steps (and after the last). Default 50. */
  checkpointEvery?: number;
  /** Continue from `checkpointDir` when it holds state. Default true. */
  resume?: boolean;
  /** Stop after this step even if `steps` is larger (a job slice; resume continues). Default: none. */
  stopAfterStep?: number;
  onStep?: (info: TrainStepInfo) => void;
  logger?: Logger;
  /** Label of the progress bar/log record. Default 'train'. */
  label?: string;
  /**
   * Σ over targets of the loss of one micro-batch (ids [b, T], mask [b, T − 1]); the loop divides by
   * the step's target count. Default: the masked next-token NLL sum.
   */
  lossSum?: (ids: tf.Tensor2D, mask: tf.Tensor2D) => tf.Scalar;
  /**
   * Threads computing gradients (data parallelism): each step's micro-batches are shared out over
   * replicas, their gradients summed, and this loop applies the one update and sends the trained
   * weights back, so the run equals the single-thread one up to float summation order. Default 1
   * (this thread only). A custom `lossSum` always runs on this thread.
   */
  threads?: number;
  /** How replicas are built when the model is not what createModel(config, weights) gives (emulators, LoRA). */
  replica?: DataParallelTrainerOptions['replica'];
  /** Computes the gradients elsewhere (a pipeline of stage workers); `threads` is then ignored. The caller closes it. */
  executor?: GradientExecutor;
}

export interface TrainResult {
  /** Steps completed in all (including resumed ones). */
  steps: number;
  /** Loss of each step taken in this call. */
  losses: number[];
  resumedFrom: number;
  seconds: number;
}

const STATE_JSON = 'train-state.json';
const STATE_TENSORS = 'train-state.safetensors';

/**
 * The optimisation loop: token-weighted gradient accumulation over micro-batches, global-norm clipping,
 * AdamW with warmup + cosine, periodic atomic checkpoints. Resuming from a checkpoint reproduces an
 * uninterrupted run exactly (same weights, moments, step and data position).
 */
export async function trainLoop(
  model: CausalLM | null,
  variables: Map<string, tf.Variable>,
  batcher: TaskBatcher,
  hyper: TrainHyperParameters,
  opts: TrainLoopOptions = {},
): Promise<TrainResult> {
  const started = performance.now();
  if (variables.size === 0) throw new OffsiteError('NOTHING_TO_TRAIN', 'no trainable parameters were selected', { where: 'train' });
  if (!model && !opts.executor) throw new OffsiteError('BAD_OPTION', 'trainLoop needs the model unless an executor computes the gradients', { where: 'train' });
  const optimizer = new AdamW(variables, { lr: hyper.lr, weightDecay: hyper.weightDecay });
  const schedule = warmupCosine({ warmupSteps: Math.min(hyper.warmupSteps, hyper.steps), totalSteps: hyper.steps, peakLr: hyper.lr, finalLrFraction: hyper.finalLrFraction });
  const lossSum = opts.lossSum ?? ((ids: tf.Tensor2D, mask: tf.Tensor2D) => shiftedLossSum(model!, ids, mask));
  const every = opts.checkpointEvery ?? 50;
  const fingerprint = trainFingerprint(hyper, variables);
  let resumedFrom = 0;
  let dp: DataParallelTrainer | undefined;
  let executor = opts.executor;
  try {
    if (opts.checkpointDir && (opts.resume ?? true) && existsSync(join(opts.checkpointDir, STATE_JSON))) {
      resumedFrom = await loadTrainState(opts.checkpointDir, fingerprint, variables, optimizer, batcher);
    }
    const threads = Math.max(1, Math.floor(opts.threads ?? 1));
    if (threads > 1 && opts.lossSum) opts.logger?.info({ threads }, 'custom loss: training on one thread');
    if (!executor && model && threads > 1 && !opts.lossSum) {
      const replicas = await DataParallelTrainer.create(model, { threads, variables, replica: opts.replica, backend: tf.getBackend() as DataParallelTrainerOptions['backend'] });
      dp = replicas;
      executor = { gradients: (parts, normalizer) => replicas.gradients(shareOut(parts, replicas.threads), normalizer), loadTrainable: (values) => replicas.loadTrainable(values) };
      opts.logger?.info({ threads }, 'data-parallel training');
    }
    if (executor) await executor.loadTrainable(new Map([...variables].map(([n, v]) => [n, v.dataSync() as Float32Array])));
    const last = Math.min(hyper.steps, opts.stopAfterStep ?? hyper.steps);
    const progress = new Progress({ total: hyper.steps, unit: 'step', label: opts.label ?? 'train', logger: opts.logger });
    if (resumedFrom > 0) progress.tick(resumedFrom);
    const losses: number[] = [];
    const vars = [...variables.values()];
    const names = [...variables.keys()];
    for (let step = resumedFrom; step < last; step++) {
      const t0 = performance.now();
      const { rows, masks } = batcher.next();
      let tokens = 0;
      for (const m of masks) for (const x of m) tokens += x;
      if (tokens <= 0) throw new OffsiteError('EMPTY_DATASET', 'a training batch has no target token', { where: 'train' });
      // Longest first: micro-batches then pad little.
      const order = rows.map((_, i) => i).sort((a, b) => rows[b].length - rows[a].length || a - b);
      let lossTotal = 0;
      let gradMap: Map<string, tf.Tensor>;
      const parts: TokenBatch[] = [];
      for (let from = 0; from < order.length; from += hyper.microBatchSize) {
        const part = order.slice(from, from + hyper.microBatchSize);
        const len = rows[part[0]].length;
        const ids = new Int32Array(part.length * len);
        const mask = new Float32Array(part.length * (len - 1));
        part.forEach((r, k) => {
          ids.set(rows[r], k * len);
          mask.set(masks[r], k * (len - 1));
        });
        parts.push({ ids, rows: part.length, seqLen: len, lossMask: mask });
      }
      if (executor) {
        const r = await executor.gradients(parts, tokens);
        lossTotal = r.lossSum / tokens;
        gradMap = r.grads;
      } else {
        const acc: (tf.Tensor | undefined)[] = vars.map(() => undefined);
        for (const p of parts) {
          const { value, grads } = tf.tidy(() =>
            tf.variableGrads(
              () => tf.div(lossSum(tf.tensor2d(p.ids, [p.rows, p.seqLen], 'int32'), tf.tensor2d(p.lossMask!, [p.rows, p.seqLen - 1], 'float32')), tokens) as tf.Scalar,
              vars,
            ),
          );
          lossTotal += (await value.data())[0];
          value.dispose();
          accumulateGradients(acc, vars, grads);
        }
        gradMap = new Map<string, tf.Tensor>(names.map((n, i) => [n, acc[i] ?? tf.zerosLike(vars[i])]));
      }
      const { grads: clipped, norm } = await clipByGlobalNormAsync(gradMap, hyper.gradClip);
      tf.dispose([...gradMap.values()]);
      const lr = schedule(step);
      optimizer.apply(clipped, lr);
      tf.dispose([...clipped.values()]);
      if (executor) await executor.loadTrainable(new Map(names.map((n, i) => [n, vars[i].dataSync() as Float32Array])));
      losses.push(lossTotal);
      const info: TrainStepInfo = { step: step + 1, totalSteps: hyper.steps, loss: lossTotal, lr, gradNorm: norm, seconds: (performance.now() - t0) / 1000 };
      opts.onStep?.(info);
      progress.tick(1, { loss: lossTotal, lr });
      if (opts.checkpointDir && ((step + 1) % every === 0 || step + 1 === last)) {
        await saveTrainState(opts.checkpointDir, fingerprint, step + 1, variables, optimizer, batcher.getState());
      }
    }
    return { steps: Math.max(last, resumedFrom), losses, resumedFrom, seconds: (performance.now() - started) / 1000 };
  } finally {
    await dp?.close();
    optimizer.dispose();
  }
}

/** Micro-batches over `n` replicas, longest first to the least loaded (cost: rows × length). */
function shareOut(parts: TokenBatch[], n: number): TokenBatch[][] {
  const out: TokenBatch[][] = Array.from({ length: n }, () => []);
  const load = new Array<number>(n).fill(0);
  for (const p of parts) {
    let least = 0;
    for (let w = 1; w < n; w++) if (load[w] < load[least]) least = w;
    out[least].push(p);
    load[least] += p.rows * p.seqLen;
  }
  return out;
}

/** What must not change between a run and its resumption. */
function trainFingerprint(hyper: TrainHyperParameters, variables: Map<string, tf.Variable>): Record<string, unknown> {
  return { hyper: { ...hyper }, variables: [...variables].map(([n, v]) => [n, v.shape]) };
}

async function saveTrainState(
  dir: string,
  fingerprint: Record<string, unknown>,
  step: number,
  variables: Map<string, tf.Variable>,
  optimizer: AdamW,
  batcher: TaskBatcherState,
): Promise<void> {
  const tensors: WriteTensor[] = [];
  const opt = optimizer.getState();
  for (const [name, v] of variables) {
    tensors.push({ name: `param/${name}`, dtype: 'F32', shape: v.shape.slice(), data: (await v.data()) as Float32Array });
    tensors.push({ name: `adam.m/${name}`, dtype: 'F32', shape: v.shape.slice(), data: opt.m[name] });
    tensors.push({ name: `adam.v/${name}`, dtype: 'F32', shape: v.shape.slice(), data: opt.v[name] });
  }
  const state = { format: 'scaleot.train-state', version: 1, step, optimizerStep: opt.step, batcher, fingerprint, savedAt: new Date().toISOString() };
  await writeArtifactDir(
    dir,
    [
      { name: STATE_JSON, chunks: [Buffer.from(`${JSON.stringify(state, null, 2)}\n`)] },
      { name: STATE_TENSORS, chunks: encodeSafetensors(tensors, undefined, join(dir, STATE_TENSORS)) },
    ],
    { overwrite: true },
  );
}

async function loadTrainState(dir: string, fingerprint: Record<string, unknown>, variables: Map<string, tf.Variable>, optimizer: AdamW, batcher: TaskBatcher): Promise<number> {
  const path = join(dir, STATE_JSON);
  let state: { format?: string; version?: number; step: number; optimizerStep: number; batcher: TaskBatcherState; fingerprint: unknown };
  try {
    state = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new OffsiteError('BAD_TRAIN_STATE', 'training checkpoint is unreadable; delete it to start over', { where: path, cause });
  }
  if (state.format !== 'scaleot.train-state' || state.version !== 1) {
    throw new OffsiteError('BAD_TRAIN_STATE', `not a version-1 scaleot training checkpoint (format ${state.format}, version ${state.version})`, { where: path });
  }
  if (JSON.stringify(state.fingerprint) !== JSON.stringify(fingerprint)) {
    throw new OffsiteError('TRAIN_STATE_MISMATCH', 'the checkpoint was written by a run with other hyper-parameters or other trainable parameters; use the same settings or another checkpoint dir', { where: path });
  }
  const file = await SafetensorsFile.open(join(dir, STATE_TENSORS));
  try {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, variable] of variables) {
      const values = await file.readFloat32(`param/${name}`);
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape, 'float32')));
      m[name] = await file.readFloat32(`adam.m/${name}`);
      v[name] = await file.readFloat32(`adam.v/${name}`);
    }
    optimizer.setState({ step: state.optimizerStep, m, v });
  } finally {
    await file.close();
  }
  batcher.setState(state.batcher);
  return state.step;
}
