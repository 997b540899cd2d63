import * as tf from '@tensorflow/tfjs';

/** HF `rope_scaling`, normalised (`rope_type` or the legacy `type`; null / "default" = none). */
export type RopeScaling =
  | { type: 'default' }
  /** Positions divided by `factor` (HF divides inv_freq by it). */
  | { type: 'linear'; factor: number }
  /** NTK-aware: the base grows once a sequence is longer than max_position_embeddings. */
  | { type: 'dynamic'; factor: number }
  /** Llama 3.1 wavelength bands. */
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface RotaryConfig {
  /** Rotated width per head (the whole head: LLaMA has no partial rotary). Even. */
  headDim: number;
  /** `rope_theta`. */
  theta: number;
  scaling: RopeScaling;
  /** `max_position_embeddings`: dynamic NTK scales the base only beyond it. */
  maxPositions: number;
}

const f32 = Math.fround;

/**
 * inv_freq [headDim/2] in float32, step by step as HF's `ROPE_INIT_FUNCTIONS` compute it (float32
 * tensors): `1/θ^(2i/d)`, then the scaling rule. `seqLen` (max position + 1) matters only for dynamic
 * NTK, which here is stateless: the base is scaled exactly when seqLen > max_position_embeddings (HF
 * keeps the last grown base cached until a short sequence resets it).
 */
export function ropeInverseFrequencies(c: RotaryConfig, seqLen: number): Float32Array {
  const dim = c.headDim;
  const half = dim / 2;
  const s = c.scaling;
  let base = c.theta;
  if (s.type === 'dynamic' && seqLen > c.maxPositions) {
    base = f32(base * Math.pow((s.factor * seqLen) / c.maxPositions - (s.factor - 1), dim / (dim - 2)));
  }
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(Math.pow(base, f32((2 * i) / dim))));
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f32(inv[i] / s.factor);
  } else if (s.type === 'llama3') {
    const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = f32((2 * Math.PI) / inv[i]);
      if (wavelen > lowFreqWavelen) {
        inv[i] = f32(inv[i] / s.factor);
      } else if (wavelen >= highFreqWavelen) {
        // Medium band: interpolate between the scaled and the original frequency.
        const smooth = f32(f32(f32(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
        inv[i] = f32(f32(f32(f32(1 - smooth) * inv[i]) / s.factor) + f32(smooth * inv[i]));
      }
    }
  }
  return inv;
}

/**
 * cos and sin tables for the rotations, already in the layout the attention consumes: a `[..., hd]`
 * tensor whose last axis is HF's `cat(freqs, freqs)`. The sin table carries rotate_half's sign
 * (−sin on the first half), so rotation is `x·cos + swapHalves(x)·sin`; the query tables also carry the
 * attention scale 1/√hd (one multiply fewer per layer) and repeat per query head of a kv group.
 */
export interface RotaryTables {
  qCos: tf.Tensor;
  qSin: tf.Tensor;
  kCos: tf.Tensor;
  kSin: tf.Tensor;
}

function fill(inv: Float32Array, positions: ArrayLike<number>, scale: number): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const hd = 2 * half;
  const cos = new Float32Array(positions.length * hd);
  const sin = new Float32Array(positions.length * hd);
  for (let r = 0; r < positions.length; r++) {
    const p = positions[r];
    for (let i = 0; i < half; i++) {
      // float32 angle as HF's inv_freq @ position_ids (float32) gives it.
      const angle = f32(inv[i] * p);
      const c = f32(Math.cos(angle)) * scale;
      const s = f32(Math.sin(angle)) * scale;
      cos[r * hd + i] = c;
      cos[r * hd + half + i] = c;
      sin[r * hd + i] = -s;
      sin[r * hd + half + i] = s;
    }
  }
  return { cos, sin };
}

/** Tables of plain positions 0…t−1 (shape [t, hd], broadcast over heads and batch), kept per backend and config. */
const defaultTables = new Map<string, RotaryTables>();
/** Tables of explicit position ids, per ids tensor (every block of one forward shares them). */
const explicitTables = new WeakMap<tf.Tensor, Map<string, RotaryTables>>();

function live(tables: RotaryTables | undefined): tables is RotaryTables {
  return tables !== undefined && !tables.qCos.isDisposed && !tables.qSin.isDisposed && !tables.kCos.isDisposed && !tables.kSin.isDisposed;
}

/**
 * Rotary position embedding in HF's rotate_half layout (split halves, never interleaved pairs).
 * Stateless: tables come from process-wide caches, so every block of a model (and every model of the
 * same settings) shares them.
 */
export class RotaryEmbedding {
  private readonly key: string;

  constructor(
    readonly config: RotaryConfig,
    /** Multiplier folded into the query tables (the attention's 1/√hd). */
    readonly queryScale: number,
    /** Query heads per key/value head (the query tables repeat each position for them). */
    readonly groupSize: number,
  ) {
    if (config.headDim % 2 !== 0) throw new RangeError(`rotary head_dim must be even, got ${config.headDim}`);
    this.key = JSON.stringify([config, queryScale, groupSize]);
  }

  /**
   * Tables for a forward of b rows of t tokens, matching keys laid out [kvHeads, b, t, hd] and grouped
   * queries [kvHeads, b, t, groupSize, hd]. Without `positionIds` (0…t−1 for every row): keys [t, hd],
   * queries [t, groupSize, hd]. With them: keys [b, t, hd], queries [b, t, groupSize, hd].
   */
  tables(b: number, t: number, positionIds?: tf.Tensor2D): RotaryTables {
    if (!positionIds) {
      const key = `${tf.getBackend()}|${this.key}|${t}`;
      let tables = defaultTables.get(key);
      if (!live(tables)) {
        tables = this.build(Array.from({ length: t }, (_, i) => i), t, [t]);
        for (const x of Object.values(tables)) tf.keep(x);
        defaultTables.set(key, tables);
      }
      return tables;
    }
    let perTensor = explicitTables.get(positionIds);
    if (!perTensor) {
      perTensor = new Map();
      explicitTables.set(positionIds, perTensor);
    }
    let tables = perTensor.get(this.key);
    if (!live(tables)) {
      // Position ids are a small host-side [b, t] (wasm and cpu keep tensors on the host anyway).
      const positions = positionIds.dataSync();
      let max = 0;
      for (const p of positions) max = Math.max(max, p);
      tables = this.build(positions, max + 1, [b, t]);
      perTensor.set(this.key, tables);
    }
    return tables;
  }

  private build(positions: ArrayLike<number>, seqLen: number, rows: number[]): RotaryTables {
    const hd = this.config.headDim;
    const rep = this.groupSize;
    const inv = ropeInverseFrequencies(this.config, seqLen);
    const k = fill(inv, positions, 1);
    const q = fill(inv, positions, this.queryScale);
    // Each position's query row repeated for the rep heads of a group.
    const repeat = (src: Float32Array): Float32Array => {
      if (rep === 1) return src;
      const out = new Float32Array(src.length * rep);
      for (let p = 0; p < positions.length; p++) for (let r = 0; r < rep; r++) out.set(src.subarray(p * hd, (p + 1) * hd), (p * rep + r) * hd);
      return out;
    };
    const kShape = [...rows, hd];
    const qShape = [...rows, rep, hd];
    return { qCos: tf.tensor(repeat(q.cos), qShape), qSin: tf.tensor(repeat(q.sin), qShape), kCos: tf.tensor(k.cos, kShape), kSin: tf.tensor(k.sin, kShape) };
  }
}

const swapMatrices = new Map<string, tf.Tensor2D>();

/** [hd, hd] permutation that swaps the two halves of a row vector (x·P = [x2, x1]); cached per backend. */
function swapHalves(hd: number): tf.Tensor2D {
  const key = `${tf.getBackend()}:${hd}`;
  let p = swapMatrices.get(key);
  if (!p || p.isDisposed) {
    const half = hd / 2;
    const data = new Float32Array(hd * hd);
    for (let i = 0; i < half; i++) {
      data[(i + half) * hd + i] = 1;
      data[i * hd + i + half] = 1;
    }
    p = tf.keep(tf.tensor2d(data, [hd, hd]));
    swapMatrices.set(key, p);
  }
  return p;
}

/**
 * x·cos + rotate_half(x)·sin over the last axis [..., hd], with the sign of rotate_half in the sin table
 * (see RotaryTables). The half swap is a matmul by a permutation: on wasm that is the XNNPACK fast path
 * (hd multiply-adds per value), ~10× faster than the Reverse kernel, and its gradient is one more.
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const hd = x.shape[x.shape.length - 1];
  const swapped = tf.reshape(tf.matMul(tf.reshape(x, [-1, hd]) as tf.Tensor2D, swapHalves(hd)), x.shape);
  return tf.add(tf.mul(x, cos), tf.mul(swapped, sin));
}
