import { createRng } from '@scaleot/data';
import { loadModel, sliceBatch, type CausalLM, type TokenBatch } from '@scaleot/model';
import type { TaskInput } from '@scaleot/offsite';
import * as tf from '@tensorflow/tfjs';
import { Harmonizer } from './Harmonizer.js';
import { maskedForward } from './harmonizerStep.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';
import { corpusStreams } from './stage1.js';
import type { Stage1Artifacts } from './stage1Artifacts.js';
import { windowsAt } from './Stage1Executor.js';
import { windowStarts } from './stage1Loop.js';

/**
 * Which criterion picks the middle blocks a ScaleOT emulator compresses: 'importance' (stage 1's
 * reinforcement scores, the paper's), 'gradot' (GradOT-style, measured here: compress the blocks whose
 * replacement changes the adapter blocks' gradients least while moving the LM loss most, each block
 * measured alone) or 'gradot-greedy' (the same score, but blocks are chosen one at a time and every
 * candidate is measured with the blocks chosen so far already compressed, so the errors of neighbouring
 * stand-ins that compound are seen).
 */
export type SelectionCriterion = 'importance' | 'gradot' | 'gradot-greedy';

/** One round of the greedy GradOT: every candidate measured on top of the blocks chosen before it. */
export interface GradotRound {
  /** The block this round compresses (the lowest keep score among the candidates). */
  chosen: number;
  /** Each candidate with every earlier choice and itself compressed; changes are against the full model. */
  blocks: GradotBlock[];
}

/** Settings of the GradOT-style measurement (all have defaults). */
export interface GradotOptions {
  /** Windows of the owner's corpus (train split) the criterion is measured on. Default 8. */
  batchSize?: number;
  /** Tokens the model reads per window (windows hold seqLen + 1). Default: the model's context. */
  seqLen?: number;
  /** Windows per forward/backward pass (gradients are accumulated). Default 4. */
  microBatchSize?: number;
  /** Seeds the window draws. Default 0. */
  seed?: number;
  /**
   * w in keep_i = gradChange_i / mean(gradChange) − w · lossChange_i / mean|lossChange|: 0 ranks by the
   * gradient change alone (utility only); larger w prefers blocks whose replacement weakens the emulator.
   * Default 1.
   */
  lossWeight?: number;
}

/** What GradOT measured for one middle block (replaced alone, every other block raw). */
export interface GradotBlock {
  /** Original block index. */
  index: number;
  /** ‖g_i − g‖ / ‖g‖: relative L2 change of the concatenated adapter gradient (g: full model, g_i: block i replaced). */
  gradChange: number;
  /** cos(g_i, g). */
  cosine: number;
  /** L_i − L (nats per token; positive: the replacement makes the LM loss worse). */
  lossChange: number;
  /** The combined score; the round(α·|group|) LOWEST keep scores of each group are compressed. */
  keepScore: number;
}

/** The measurement an emulator manifest records under `parameters.selection`. */
export interface GradotMeasurement {
  criterion: 'gradot' | 'gradot-greedy';
  /** What stands in for a measured block: its stage-1 harmonizer ('replace') or nothing ('drop': the identity). */
  standIn: 'harmonizer' | 'identity';
  score: 'keep_i = gradChange_i / mean_j(gradChange_j) − lossWeight · lossChange_i / mean_j|lossChange_j|';
  lossWeight: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  corpus: string;
  /** Target tokens the loss and gradients average over. */
  tokens: number;
  /** Adapter blocks whose gradients are compared (original indices) and their parameter count. */
  adapterBlocks: number[];
  adapterParameters: number;
  /** LM loss and adapter-gradient norm of the full model on the batch. */
  fullLoss: number;
  fullGradNorm: number;
  /** Every middle block replaced alone (for 'gradot-greedy': its first round). */
  blocks: GradotBlock[];
  /** 'gradot-greedy': the rounds, in the order the blocks were chosen. */
  rounds?: GradotRound[];
  seconds: number;
}

/** Loss and concatenated adapter gradient of one configuration. */
export interface AdapterGradient {
  /** Mean next-token NLL (nats per target token). */
  loss: number;
  /** d loss / d θ_adapter, the adapter variables concatenated in ascending name order. */
  gradient: Float32Array;
  /** The variable names in the order of `gradient`. */
  names: string[];
}

/**
 * The mean next-token NLL of `model` on `batch` with the blocks `mask` marks 0 routed through
 * `standIns` (1 or absent: raw), and its gradient w.r.t. every variable of the original blocks at
 * `adapterBlocks`. Accumulated over micro-batches, so it equals the gradient of the whole batch.
 */
export function adapterGradient(
  model: CausalLM,
  standIns: ReadonlyMap<number, Harmonizer>,
  mask: readonly number[],
  adapterBlocks: readonly number[],
  batch: TokenBatch,
  microBatchSize = 4,
): AdapterGradient {
  const vars = new Map<string, tf.Variable>();
  for (const b of model.blocks) if (adapterBlocks.includes(b.sourceIndex)) for (const [n, v] of b.namedVariables()) vars.set(n, v);
  const missing = adapterBlocks.filter((i) => !model.blocks.some((b) => b.sourceIndex === i));
  if (missing.length > 0) throw new ScaleotMethodError('BAD_OPTION', `the model has no block ${missing.join(',')} to take adapter gradients of`, { where: 'gradot' });
  for (const i of adapterBlocks) {
    if (mask[i] === 0) throw new ScaleotMethodError('BAD_MASK', `adapter block ${i} cannot be replaced while its gradient is measured`, { where: 'gradot' });
  }
  const names = [...vars.keys()].sort();
  const list = names.map((n) => vars.get(n)!);
  const tokens = countTokens(batch);
  if (tokens <= 0) throw new ScaleotMethodError('EMPTY_BATCH', 'the GradOT batch has no target token', { where: 'gradot' });
  const mb = Math.max(1, Math.floor(microBatchSize));
  const acc: (tf.Tensor | undefined)[] = list.map(() => undefined);
  let nllSum = 0;
  for (let from = 0; from < batch.rows; from += mb) {
    const part = sliceBatch(batch, from, Math.min(batch.rows, from + mb));
    let nll: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const out = maskedForward(model, standIns, mask, tf.tensor2d(part.ids, [part.rows, part.seqLen], 'int32'));
      const sum = part.lossMask ? tf.sum(tf.mul(out.nll, tf.tensor2d(part.lossMask, [part.rows, part.seqLen - 1], 'float32'))) : tf.sum(out.nll);
      nll = tf.keep(sum as tf.Scalar);
      return tf.div(sum, tokens) as tf.Scalar;
    }, list);
    value.dispose();
    nllSum += nll!.dataSync()[0];
    nll!.dispose();
    list.forEach((v, k) => {
      const g = grads[v.name];
      if (!g) throw new ScaleotMethodError('BAD_GRADIENT', `no gradient for "${names[k]}": the adapter variables must be trainable`, { where: 'gradot' });
      const prev = acc[k];
      acc[k] = prev ? tf.add(prev, g) : g;
      if (prev) {
        prev.dispose();
        g.dispose();
      }
    });
  }
  const size = list.reduce((s, v) => s + v.size, 0);
  const gradient = new Float32Array(size);
  let offset = 0;
  acc.forEach((g) => {
    const data = g!.dataSync() as Float32Array;
    gradient.set(data, offset);
    offset += data.length;
    g!.dispose();
  });
  return { loss: nllSum / tokens, gradient, names };
}

/** ‖a − b‖ / ‖b‖ and cos(a, b), accumulated in float64. */
export function gradientChange(a: Float32Array, b: Float32Array): { relative: number; cosine: number; normA: number; normB: number } {
  if (a.length !== b.length) throw new ScaleotMethodError('BAD_GRADIENT', `gradients of ${a.length} and ${b.length} values cannot be compared`, { where: 'gradot' });
  let diff = 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    const y = b[k];
    diff += (x - y) * (x - y);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (!(nb > 0)) throw new ScaleotMethodError('DEGENERATE_GRADIENT', 'the full model\'s adapter gradient is zero on this batch; use more or other windows', { where: 'gradot' });
  const normA = Math.sqrt(na);
  const normB = Math.sqrt(nb);
  return { relative: Math.sqrt(diff) / normB, cosine: normA > 0 ? dot / (normA * normB) : 0, normA, normB };
}

/**
 * keep_i = gradChange_i / mean_j(gradChange_j) − w · lossChange_i / mean_j|lossChange_j| (a mean of 0
 * counts as 1). Both terms are made scale-free by their mean over the middle blocks, so w trades a
 * block's share of gradient change against its share of loss change.
 */
export function gradotKeepScores(blocks: readonly Pick<GradotBlock, 'gradChange' | 'lossChange'>[], lossWeight = 1): number[] {
  if (!Number.isFinite(lossWeight) || lossWeight < 0) throw new ScaleotMethodError('BAD_OPTION', `lossWeight must be a finite number ≥ 0, got ${lossWeight}`, { where: 'gradot.lossWeight' });
  if (blocks.length === 0) return [];
  const meanG = blocks.reduce((s, b) => s + b.gradChange, 0) / blocks.length || 1;
  const meanL = blocks.reduce((s, b) => s + Math.abs(b.lossChange), 0) / blocks.length || 1;
  return blocks.map((b) => b.gradChange / meanG - (lossWeight * b.lossChange) / meanL);
}

/**
 * GradOT on a loaded full model: the adapter gradient and loss of the full model, then of the model with
 * each middle block alone routed through its stand-in; the per-block numbers and keep scores. With
 * `greedy` ({groups, quota}: how many blocks of each group to compress), blocks are then chosen one per
 * round: each round measures every block of a group with quota left, with the blocks already chosen
 * compressed too, and takes the lowest keep score (ties: the lower index). The first round is the
 * single-block measurement.
 */
export function measureGradotOnModel(
  model: CausalLM,
  standIns: ReadonlyMap<number, Harmonizer>,
  opts: {
    middle: readonly number[];
    adapterBlocks: readonly number[];
    batch: TokenBatch;
    microBatchSize?: number;
    lossWeight?: number;
    greedy?: { groups: readonly (readonly number[])[]; quota: readonly number[] };
  },
): Pick<GradotMeasurement, 'fullLoss' | 'fullGradNorm' | 'blocks' | 'rounds' | 'tokens' | 'adapterParameters'> {
  const lossWeight = opts.lossWeight ?? 1;
  if (opts.adapterBlocks.length === 0) throw new ScaleotMethodError('BAD_OPTION', 'GradOT compares adapter gradients; the layout has no adapter block', { where: 'gradot' });
  for (const i of opts.middle) if (!standIns.has(i)) throw new ScaleotMethodError('BAD_OPTION', `middle block ${i} has no stand-in to measure`, { where: 'gradot' });
  const n = model.blocks.length;
  const full = adapterGradient(model, standIns, new Array<number>(n).fill(1), opts.adapterBlocks, opts.batch, opts.microBatchSize);
  /** Each candidate compressed together with `chosen`, scored against the full model. */
  const measure = (candidates: readonly number[], chosen: readonly number[]): GradotBlock[] => {
    const measured = candidates.map((i) => {
      const mask = new Array<number>(n).fill(1);
      for (const j of [...chosen, i]) mask[j] = 0;
      const r = adapterGradient(model, standIns, mask, opts.adapterBlocks, opts.batch, opts.microBatchSize);
      const c = gradientChange(r.gradient, full.gradient);
      return { index: i, gradChange: c.relative, cosine: c.cosine, lossChange: r.loss - full.loss };
    });
    return rescore(measured, lossWeight);
  };
  const blocks = measure(opts.middle, []);
  const rounds = opts.greedy ? greedyRounds(blocks, opts.greedy, lossWeight, measure) : undefined;
  return {
    fullLoss: full.loss,
    fullGradNorm: gradientChange(full.gradient, full.gradient).normB,
    blocks,
    ...(rounds ? { rounds } : {}),
    tokens: countTokens(opts.batch),
    adapterParameters: full.gradient.length,
  };
}

function rescore(blocks: readonly Omit<GradotBlock, 'keepScore'>[], lossWeight: number): GradotBlock[] {
  const keep = gradotKeepScores(blocks, lossWeight);
  return blocks.map((b, k) => ({ ...b, keepScore: keep[k] }));
}

function greedyRounds(
  first: GradotBlock[],
  greedy: { groups: readonly (readonly number[])[]; quota: readonly number[] },
  lossWeight: number,
  measure: (candidates: readonly number[], chosen: readonly number[]) => GradotBlock[],
): GradotRound[] {
  if (greedy.quota.length !== greedy.groups.length || greedy.quota.some((q, g) => !Number.isInteger(q) || q < 0 || q > greedy.groups[g].length)) {
    throw new ScaleotMethodError('BAD_OPTION', `greedy quota ${JSON.stringify(greedy.quota)} does not fit the groups ${JSON.stringify(greedy.groups)}`, { where: 'gradot' });
  }
  const left = [...greedy.quota];
  const chosen: number[] = [];
  const rounds: GradotRound[] = [];
  const total = left.reduce((a, b) => a + b, 0);
  for (let r = 0; r < total; r++) {
    const candidates = greedy.groups.flatMap((g, gi) => (left[gi] > 0 ? g.filter((i) => !chosen.includes(i)) : []));
    // Round 0 is the single-block measurement, rescored over its candidates (a group with quota 0 has none).
    const scored = r > 0 ? measure(candidates, chosen) : rescore(first.filter((b) => candidates.includes(b.index)), lossWeight);
    const best = scored.reduce((a, b) => (b.keepScore < a.keepScore || (b.keepScore === a.keepScore && b.index < a.index) ? b : a));
    chosen.push(best.index);
    left[greedy.groups.findIndex((g) => g.includes(best.index))]--;
    rounds.push({ chosen: best.index, blocks: scored });
  }
  return rounds;
}

export interface GradotRunOptions extends GradotOptions {
  /** The full model (HF dir). */
  modelDir: string;
  /** Original indices of the adapter blocks and of the middle blocks to measure. */
  adapterBlocks: readonly number[];
  middle: readonly number[];
  /** Stage-1 artifacts: their harmonizers stand in ('harmonizer'); not needed for 'identity'. */
  stage1?: Stage1Artifacts;
  /** 'harmonizer' (ScaleOT's replace) or 'identity' (dynamic LayerDrop's drop). */
  standIn: 'harmonizer' | 'identity';
  /** The owner's corpus (an LM task; its train split). Default 'sotu'. */
  corpus?: TaskInput;
  dataRoot?: string;
  maxDocuments?: number;
  /** A pre-tokenised train stream instead of `corpus` (tests). */
  stream?: Int32Array;
  /** Choose greedily ('gradot-greedy'): the groups of the middle blocks and how many of each to compress. */
  greedy?: { groups: readonly (readonly number[])[]; quota: readonly number[] };
}

/** Loads the full model and the stand-ins, draws the seeded batch of the owner's corpus and measures GradOT. */
export async function runGradot(opts: GradotRunOptions): Promise<GradotMeasurement> {
  const started = performance.now();
  const batchSize = opts.batchSize ?? 8;
  const seed = opts.seed ?? 0;
  const lossWeight = opts.lossWeight ?? 1;
  const where = 'gradot options';
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ScaleotMethodError('BAD_OPTION', `batchSize must be a positive integer, got ${batchSize}`, { where });
  if (!Number.isSafeInteger(seed)) throw new ScaleotMethodError('BAD_OPTION', `seed must be a safe integer, got ${seed}`, { where });
  gradotKeepScores([], lossWeight);
  if (opts.standIn === 'harmonizer' && !opts.stage1) throw new ScaleotMethodError('STAGE1_MISSING', 'GradOT with harmonizer stand-ins needs the stage-1 artifacts', { where });
  const model = await loadModel(opts.modelDir, { trainable: true });
  const standIns = new Map<number, Harmonizer>();
  try {
    const config = model.config;
    const seqLen = opts.seqLen ?? config.maxPositions;
    if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > config.maxPositions) {
      throw new ScaleotMethodError('BAD_OPTION', `seqLen must be an integer in [1, ${config.maxPositions}] (the model's context), got ${seqLen}`, { where });
    }
    for (const i of opts.middle) {
      if (opts.standIn === 'identity') {
        // A fresh harmonizer has W_up = 0 and zero biases: exactly x ↦ x (the block dropped).
        standIns.set(i, new Harmonizer(i, config.hiddenSize, { rank: 1, eps: config.normEps, trainable: false }));
      } else {
        const prefix = `harmonizers.${i}.`;
        const weights = new Map([...opts.stage1!.harmonizers].filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n, t.data]));
        if (weights.size === 0) throw new ScaleotMethodError('STAGE1_LAYOUT_MISMATCH', `stage 1 trained no harmonizer for middle block ${i}`, { where: opts.stage1!.dir });
        standIns.set(i, new Harmonizer(i, config.hiddenSize, { weights, eps: config.normEps, trainable: false }));
      }
    }
    const corpus = opts.corpus ?? 'sotu';
    const stream = opts.stream ?? (await corpusStreams(corpus, opts.dataRoot, opts.modelDir, opts.maxDocuments)).train;
    if (stream.length < seqLen + 2) throw new ScaleotMethodError('EMPTY_DATASET', `the corpus has ${stream.length} tokens; a window needs seqLen + 1 = ${seqLen + 1}`, { where: 'gradot corpus' });
    const starts = windowStarts(stream.length, seqLen, batchSize, createRng(seed));
    const batch = windowsAt(stream, starts, seqLen + 1);
    const m = measureGradotOnModel(model, standIns, { middle: opts.middle, adapterBlocks: opts.adapterBlocks, batch, microBatchSize: opts.microBatchSize, lossWeight, greedy: opts.greedy });
    return {
      criterion: opts.greedy ? 'gradot-greedy' : 'gradot',
      standIn: opts.standIn,
      score: 'keep_i = gradChange_i / mean_j(gradChange_j) − lossWeight · lossChange_i / mean_j|lossChange_j|',
      lossWeight,
      batchSize,
      seqLen,
      seed,
      corpus: opts.stream ? 'stream' : typeof corpus === 'string' ? corpus : corpus.spec.name,
      adapterBlocks: [...opts.adapterBlocks],
      ...m,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const h of standIns.values()) h.dispose();
    model.dispose();
  }
}

function countTokens(batch: TokenBatch): number {
  if (!batch.lossMask) return batch.rows * (batch.seqLen - 1);
  let n = 0;
  for (const x of batch.lossMask) n += x;
  return n;
}
