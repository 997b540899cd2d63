import { accumulateGradients, AdamW, clipByGlobalNorm, crossEntropyPerToken, sliceBatch, type BlockModule, type CausalLM, type TokenBatch } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import type { Harmonizer } from './Harmonizer.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';

/**
 * The tensor half of stage 1, as pieces a data-parallel coordinator can call on shards: a gradient
 * step that returns gradients (summable across shards), the update that applies averaged gradients,
 * and a no-gradient rollout loss. `model.blocks` must be the original blocks in order; masks are
 * indexed by original block index (1 = raw block, 0 = its harmonizer).
 *
 * Batches are LM windows of T = seqLen + 1 tokens: the model reads tokens 0…T−2 and predicts 1…T−1
 * (the data protocols' windows are one token longer than n_positions).
 */

/** Identity forward, zero gradient (tfjs has no stop_gradient). */
const stopGradient = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  void save;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Tensor;

export interface MaskedForwardResult {
  /** [b, T − 1] next-token NLL. */
  nll: tf.Tensor2D;
  /** Mean over replaced blocks of ‖H_i(x) − block_i(x)‖² / ‖block_i(x) − x‖² (x detached); null when not asked or nothing replaced. */
  align: tf.Scalar | null;
}

/** Which module runs at each block-list position for `mask`. */
export function maskedBlocks(model: CausalLM, harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[]): BlockModule[] {
  return maskedModules(model.blocks, harmonizers, mask);
}

/** `blocks` (original blocks, in order) with the mask's harmonizers standing in for the replaced ones. */
export function maskedModules(blocks: readonly BlockModule[], harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[]): BlockModule[] {
  return blocks.map((block) => {
    const m = mask[block.sourceIndex];
    if (m === undefined || m === 1) return block;
    if (m !== 0) throw new ScaleotMethodError('BAD_MASK', `mask entries must be 0 or 1, block ${block.sourceIndex} has ${m}`, { where: 'mask' });
    const h = harmonizers.get(block.sourceIndex);
    if (!h) throw new ScaleotMethodError('BAD_MASK', `the mask replaces block ${block.sourceIndex}, which has no harmonizer`, { where: 'mask' });
    return h;
  });
}

/** What {@link maskedSegment} returns: the hidden state after the segment and its alignment terms. */
export interface MaskedSegmentResult {
  h: tf.Tensor3D;
  /** One per replaced block of the segment: ‖H_i(x) − block_i(x)‖² / ‖block_i(x) − x‖² (x and the target detached); empty unless asked. */
  terms: tf.Scalar[];
}

/**
 * A contiguous run of original blocks on hidden state `h`, the mask's harmonizers standing in for the
 * replaced ones: the whole model's blocks in one process, one stage's share in a pipeline. Call it
 * inside a tidy or a gradient tape.
 */
export function maskedSegment(blocks: readonly BlockModule[], harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[], h: tf.Tensor3D, withAlign = false): MaskedSegmentResult {
  const modules = maskedModules(blocks, harmonizers, mask);
  const terms: tf.Scalar[] = [];
  modules.forEach((module, pos) => {
    if (withAlign && module !== blocks[pos]) {
      const x = stopGradient(h) as tf.Tensor3D;
      const target = stopGradient(blocks[pos].apply(x));
      const residual = tf.sub(target, x);
      const err = tf.sub(module.apply(x), target);
      terms.push(tf.div(tf.sum(tf.mul(err, err)), tf.add(stopGradient(tf.sum(tf.mul(residual, residual))), 1e-12)) as tf.Scalar);
    }
    h = module.apply(h);
  });
  return { h, terms };
}

/** Forward pass of the masked model on ids [b, T]; `withAlign` also computes the alignment term. */
export function maskedForward(model: CausalLM, harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[], ids: tf.Tensor2D, withAlign = false): MaskedForwardResult {
  const out = tf.tidy(() => {
    const [b, t] = ids.shape;
    const inputs = tf.slice(ids, [0, 0], [b, t - 1]) as tf.Tensor2D;
    const targets = tf.slice(ids, [0, 1], [b, t - 1]);
    const { h, terms } = maskedSegment(model.blocks, harmonizers, mask, model.embed(inputs), withAlign);
    const nll = crossEntropyPerToken(model.head(h), targets) as tf.Tensor2D;
    const result: { nll: tf.Tensor2D; align?: tf.Scalar } = { nll };
    if (terms.length > 0) result.align = tf.div(tf.addN(terms), terms.length) as tf.Scalar;
    return result;
  }) as { nll: tf.Tensor2D; align?: tf.Scalar };
  return { nll: out.nll, align: out.align ?? null };
}

export interface GradientStepOptions {
  /** Weight of the alignment term (0 = LM loss only). Default 0. */
  alignWeight?: number;
  /** Rows per forward/backward pass. Default 4. */
  microBatchSize?: number;
  /**
   * Divide the summed NLL by this many target tokens. Default: this batch's count. A shard of a global
   * batch passes the global count (and `rowsNormalizer` the global rows), so shard gradients SUM to the
   * global batch's gradient.
   */
  tokenNormalizer?: number;
  /** Rows the alignment term is averaged over. Default: this batch's rows. */
  rowsNormalizer?: number;
}

export interface GradientStepResult {
  /** Gradients of the active harmonizers' variables (names `harmonizers.<i>.…`); caller disposes. */
  grads: Map<string, tf.Tensor>;
  /** Σ masked NLL over the batch (nats). */
  nllSum: number;
  /** Target tokens in this batch. */
  tokens: number;
  /** Σ over micro-batches of rows·align (divide by rows for the mean); 0 when off. */
  alignSum: number;
}

/**
 * Gradient of `NLL/tokens + alignWeight·align` w.r.t. the harmonizers the mask activates (the original
 * weights are frozen: they are never in the variable list). Accumulated over micro-batches.
 */
export function harmonizerGradientStep(
  model: CausalLM,
  harmonizers: ReadonlyMap<number, Harmonizer>,
  mask: readonly number[],
  batch: TokenBatch,
  opts: GradientStepOptions = {},
): GradientStepResult {
  const active = activeVariables(harmonizers, mask);
  const names = [...active.keys()];
  const vars = [...active.values()];
  const tokens = countTokens(batch);
  const tokenNorm = opts.tokenNormalizer ?? tokens;
  const rowsNorm = opts.rowsNormalizer ?? batch.rows;
  const alignWeight = opts.alignWeight ?? 0;
  if (tokenNorm <= 0) throw new ScaleotMethodError('EMPTY_BATCH', 'the batch has no target token', { where: 'stage1' });
  const mb = Math.max(1, Math.floor(opts.microBatchSize ?? 4));
  const acc: (tf.Tensor | undefined)[] = vars.map(() => undefined);
  let nllSum = 0;
  let alignSum = 0;
  for (let from = 0; from < batch.rows; from += mb) {
    const part = sliceBatch(batch, from, Math.min(batch.rows, from + mb));
    const rows = part.rows;
    let nllPart = 0;
    let alignPart = 0;
    if (vars.length === 0) {
      // Nothing replaced: no gradient, but the loss is still reported.
      const s = tf.tidy(() => sumNll(maskedForward(model, harmonizers, mask, idsTensor(part)).nll, part));
      nllPart = s.dataSync()[0];
      s.dispose();
    } else {
      const parts: tf.Scalar[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const out = maskedForward(model, harmonizers, mask, idsTensor(part), alignWeight > 0);
        const nll = sumNll(out.nll, part);
        parts.push(tf.keep(nll));
        let loss = tf.div(nll, tokenNorm) as tf.Scalar;
        if (out.align) {
          parts.push(tf.keep(out.align));
          loss = tf.add(loss, tf.mul(out.align, (alignWeight * rows) / rowsNorm)) as tf.Scalar;
        }
        return loss;
      }, vars);
      value.dispose();
      nllPart = parts[0].dataSync()[0];
      alignPart = parts[1] ? parts[1].dataSync()[0] : 0;
      tf.dispose(parts);
      accumulateGradients(acc, vars, grads);
    }
    nllSum += nllPart;
    alignSum += alignPart * rows;
  }
  const grads = new Map<string, tf.Tensor>();
  names.forEach((n, i) => grads.set(n, acc[i] ?? tf.zerosLike(vars[i])));
  return { grads, nllSum, tokens, alignSum };
}

/**
 * Per-harmonizer AdamW (torch semantics: a harmonizer the mask did not use this step has no gradient,
 * so its moments and step count stay put instead of decaying).
 */
export class HarmonizerOptimizer {
  readonly optimizers = new Map<number, AdamW>();

  constructor(harmonizers: ReadonlyMap<number, Harmonizer>, opts: { weightDecay?: number } = {}) {
    for (const [i, h] of harmonizers) this.optimizers.set(i, new AdamW(h.namedVariables(), { weightDecay: opts.weightDecay ?? 0 }));
  }

  dispose(): void {
    for (const o of this.optimizers.values()) o.dispose();
  }
}

/**
 * Clips `grads` (names `harmonizers.<i>.…`) to a global norm and applies them with each harmonizer's
 * AdamW at learning rate `lr`. Returns the pre-clip norm. Does not dispose `grads`.
 */
export function applyHarmonizerUpdate(optimizer: HarmonizerOptimizer, grads: ReadonlyMap<string, tf.Tensor>, lr: number, gradClip = 1.0): { gradNorm: number } {
  const { grads: clipped, norm } = clipByGlobalNorm(new Map(grads), gradClip);
  try {
    const byIndex = new Map<number, Map<string, tf.Tensor>>();
    for (const [name, g] of clipped) {
      const m = /^harmonizers\.(\d+)\./.exec(name);
      if (!m) throw new ScaleotMethodError('BAD_GRADIENT', `"${name}" is not a harmonizer parameter`, { where: 'stage1' });
      const i = Number(m[1]);
      if (!optimizer.optimizers.has(i)) throw new ScaleotMethodError('BAD_GRADIENT', `no harmonizer for block ${i}`, { where: name });
      if (!byIndex.has(i)) byIndex.set(i, new Map());
      byIndex.get(i)!.set(name, g);
    }
    for (const [i, g] of [...byIndex].sort((a, b) => a[0] - b[0])) optimizer.optimizers.get(i)!.apply(g, lr);
  } finally {
    tf.dispose([...clipped.values()]);
  }
  return { gradNorm: norm };
}

/** Mean next-token NLL (nats per target token) of the masked model on a batch; no gradient. */
export function rolloutLoss(model: CausalLM, harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[], batch: TokenBatch, microBatchSize = 8): number {
  const tokens = countTokens(batch);
  if (tokens <= 0) throw new ScaleotMethodError('EMPTY_BATCH', 'the rollout batch has no target token', { where: 'stage1' });
  let sum = 0;
  const mb = Math.max(1, Math.floor(microBatchSize));
  for (let from = 0; from < batch.rows; from += mb) {
    const part = sliceBatch(batch, from, Math.min(batch.rows, from + mb));
    const s = tf.tidy(() => sumNll(maskedForward(model, harmonizers, mask, idsTensor(part)).nll, part));
    sum += s.dataSync()[0];
    s.dispose();
  }
  return sum / tokens;
}

/** The variables of the harmonizers that `mask` routes through, by name. */
export function activeVariables(harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[]): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const i of [...harmonizers.keys()].sort((a, b) => a - b)) {
    if (mask[i] === 0) for (const [n, v] of harmonizers.get(i)!.namedVariables()) out.set(n, v);
  }
  return out;
}

function idsTensor(batch: TokenBatch): tf.Tensor2D {
  return tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
}

export function sumNll(nll: tf.Tensor2D, batch: TokenBatch): tf.Scalar {
  if (!batch.lossMask) return tf.sum(nll);
  return tf.sum(tf.mul(nll, tf.tensor2d(batch.lossMask, [batch.rows, batch.seqLen - 1], 'float32')));
}

export function countTokens(batch: TokenBatch): number {
  if (!batch.lossMask) return batch.rows * (batch.seqLen - 1);
  let n = 0;
  for (const x of batch.lossMask) n += x;
  return n;
}
