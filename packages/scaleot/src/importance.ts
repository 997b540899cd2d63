import type { Rng } from '@scaleot/data';
import { ScaleotMethodError } from './ScaleotMethodError.js';

/**
 * The pure, serialisable half of stage 1 (no tensors): grouping, mask sampling from importance scores
 * and the reinforcement update. Scores and masks are plain arrays indexed by ORIGINAL block index
 * (length n_layer); entries of blocks outside the groups (the adapter) are ignored and stay 0 / 1.
 * A mask entry is 1 where the block runs raw and 0 where its harmonizer stands in for it.
 */

/** Consecutive groups of `groupSize` middle blocks (the last one may be shorter), original indices. */
export function middleGroups(middle: readonly number[], groupSize = 4): number[][] {
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw new ScaleotMethodError('BAD_GROUP_SIZE', `group size must be a positive integer, got ${groupSize}`, { where: 'groups' });
  }
  if (middle.length === 0) throw new ScaleotMethodError('NO_MIDDLE_BLOCKS', 'there is no middle block to group; use fewer adapter blocks', { where: 'groups' });
  const out: number[][] = [];
  for (let i = 0; i < middle.length; i += groupSize) out.push(middle.slice(i, i + groupSize));
  return out;
}

/** Maximal runs of consecutive block indices of an ascending list (one run for a sandwich's middle). */
export function middleSegments(middle: readonly number[]): number[][] {
  const out: number[][] = [];
  for (const i of middle) {
    const last = out.at(-1);
    if (last && last.at(-1) === i - 1) last.push(i);
    else out.push([i]);
  }
  return out;
}

/** How many blocks of a group of `size` stay raw while training (top half by p_i). */
export function rawPerGroup(size: number, keepFraction = 0.5): number {
  return Math.min(size, Math.max(0, Math.round(size * keepFraction)));
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export interface MaskSamplingOptions {
  /** Fraction of each group kept raw. Default 0.5 (the top half). */
  keepFraction?: number;
}

/**
 * One grouped mask: u_i ~ U(0,1) for every grouped block (group order, then block order), p_i = u_i·σ(s_i);
 * in every group the top `rawPerGroup` blocks by p_i stay raw (ties: lower index first), the others get
 * their harmonizer. Blocks outside the groups are raw. Draws exactly one number per grouped block.
 */
export function sampleGroupedMask(scores: readonly number[], groups: readonly (readonly number[])[], rng: Rng, opts: MaskSamplingOptions = {}): number[] {
  const mask = new Array<number>(scores.length).fill(1);
  for (const group of groups) {
    const p = group.map((i) => {
      if (i < 0 || i >= scores.length) throw new ScaleotMethodError('BAD_SCORES', `group names block ${i}, scores cover ${scores.length} blocks`, { where: 'mask' });
      return rng.next() * sigmoid(scores[i]);
    });
    const order = group.map((_, k) => k).sort((a, b) => p[b] - p[a] || group[a] - group[b]);
    const keep = rawPerGroup(group.length, opts.keepFraction);
    order.forEach((k, rank) => {
      mask[group[k]] = rank < keep ? 1 : 0;
    });
  }
  return mask;
}

export interface ReinforceOptions {
  /** Step size η. Default 0.05 (REINFORCE_DEFAULTS). */
  eta?: number;
  /** Scores are clamped to [−clamp, clamp]. Default 6. */
  clamp?: number;
  /** ε in the advantage's denominator. Default 1e-8. */
  eps?: number;
}

/**
 * The importance update's defaults (stage 1's too). η 0.05: on sotu-llama-24l the α = 0.5 plan stopped
 * changing at step 80 of 300 with it, and was still changing at step 286 with 0.02, whose plan gave a
 * plug-in 1.2 perplexity worse (docs/scaleot-results.md, the levers of §5).
 */
export const REINFORCE_DEFAULTS: Required<ReinforceOptions> = { eta: 0.05, clamp: 6, eps: 1e-8 };

export interface ReinforceResult {
  scores: number[];
  /** A_j = (mean(L) − L_j) / (std(L) + ε), population std. */
  advantages: number[];
}

/**
 * The importance update from candidate rollouts: s_i ← clamp(s_i + η·Σ_j A_j·m_ij) for every grouped
 * block i (m_ij = 1 when candidate j kept block i raw). A candidate with below-average loss raises the
 * scores of the blocks it kept raw, so blocks whose replacement hurts climb.
 */
export function reinforceUpdate(
  scores: readonly number[],
  masks: readonly (readonly number[])[],
  losses: readonly number[],
  groups: readonly (readonly number[])[],
  opts: ReinforceOptions = {},
): ReinforceResult {
  if (masks.length !== losses.length || masks.length === 0) {
    throw new ScaleotMethodError('BAD_MASK', `need one loss per candidate mask (got ${masks.length} masks, ${losses.length} losses)`, { where: 'reinforce' });
  }
  for (const m of masks) {
    if (m.length !== scores.length) throw new ScaleotMethodError('BAD_MASK', `a mask covers ${m.length} blocks, scores cover ${scores.length}`, { where: 'reinforce' });
  }
  if (!losses.every(Number.isFinite)) throw new ScaleotMethodError('BAD_MASK', `candidate losses must be finite, got ${losses.join(', ')}`, { where: 'reinforce' });
  const eta = opts.eta ?? REINFORCE_DEFAULTS.eta;
  const clamp = opts.clamp ?? REINFORCE_DEFAULTS.clamp;
  const eps = opts.eps ?? REINFORCE_DEFAULTS.eps;
  const n = losses.length;
  const mean = losses.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(losses.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n);
  const advantages = losses.map((l) => (mean - l) / (std + eps));
  const out = scores.slice();
  for (const group of groups) {
    for (const i of group) {
      let delta = 0;
      for (let j = 0; j < n; j++) delta += advantages[j] * masks[j][i];
      out[i] = Math.min(clamp, Math.max(-clamp, out[i] + eta * delta));
    }
  }
  return { scores: out, advantages };
}
