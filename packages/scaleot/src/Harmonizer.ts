import { createRng } from '@scaleot/data';
import { geluNew, layerNorm, type BlockModule } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { ScaleotMethodError } from './ScaleotMethodError.js';

export const HARMONIZER_KIND = 'scaleot.harmonizer';

/** Tensor-name prefix of the harmonizer standing in for original block `index`. */
export function harmonizerPrefix(index: number): string {
  return `harmonizers.${index}`;
}

export interface HarmonizerOptions {
  /** Bottleneck rank r. Default: d/2. */
  rank?: number;
  /** LayerNorm epsilon. Default 1e-5 (GPT-2's). */
  eps?: number;
  /** Seeds W_down's N(0, initStd²) init (ignored when `weights` is given). Default 0. */
  seed?: number;
  /** Std of W_down at init. Default 0.02. */
  initStd?: number;
  /** Weights under this module's names (`harmonizers.<i>.down.weight` …); default: fresh init (identity map). */
  weights?: Map<string, Float32Array>;
  /** Variables trainable. Default true. */
  trainable?: boolean;
}

/**
 * ScaleOT's harmonizer: a residual low-rank MLP that stands in for one transformer block,
 * `H(x) = x + GELU(LN(x)·W_down + b_down)·W_up + b_up` (weights in GPT-2's Conv1D [in, out] layout:
 * down [d, r], up [r, d]; GELU = gelu_new). W_down starts random and W_up and both biases at zero, so H
 * starts as the identity and still gets gradients on W_up. Names: `harmonizers.<i>.{ln,down,up}.{weight,bias}`.
 */
export class Harmonizer implements BlockModule {
  readonly kind = HARMONIZER_KIND;
  readonly prefix: string;
  readonly rank: number;
  readonly eps: number;
  readonly lnWeight: tf.Variable;
  readonly lnBias: tf.Variable;
  readonly downWeight: tf.Variable;
  readonly downBias: tf.Variable;
  readonly upWeight: tf.Variable;
  readonly upBias: tf.Variable;

  constructor(
    readonly sourceIndex: number,
    readonly dModel: number,
    opts: HarmonizerOptions = {},
  ) {
    this.prefix = harmonizerPrefix(sourceIndex);
    this.eps = opts.eps ?? 1e-5;
    const weights = opts.weights;
    const rankFromWeights = weights?.get(`${this.prefix}.down.bias`)?.length;
    this.rank = opts.rank ?? rankFromWeights ?? Math.max(1, Math.floor(dModel / 2));
    if (!Number.isInteger(this.rank) || this.rank < 1) {
      throw new ScaleotMethodError('BAD_OPTION', `harmonizer rank must be a positive integer, got ${this.rank}`, { where: this.prefix });
    }
    const d = dModel;
    const r = this.rank;
    const trainable = opts.trainable ?? true;
    const make = (suffix: string, shape: number[], init: () => Float32Array): tf.Variable => {
      const name = `${this.prefix}.${suffix}`;
      let data: Float32Array;
      if (weights) {
        const w = weights.get(name);
        if (!w) throw new ScaleotMethodError('MISSING_TENSOR', `harmonizer weights lack "${name}"`, { where: name });
        if (w.length !== shape.reduce((a, b) => a * b, 1)) {
          throw new ScaleotMethodError('SHAPE_MISMATCH', `"${name}" has ${w.length} values, a rank-${r} harmonizer of width ${d} needs [${shape}]`, { where: name });
        }
        data = w;
      } else {
        data = init();
      }
      return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), trainable));
    };
    const std = opts.initStd ?? 0.02;
    this.lnWeight = make('ln.weight', [d], () => new Float32Array(d).fill(1));
    this.lnBias = make('ln.bias', [d], () => new Float32Array(d));
    this.downWeight = make('down.weight', [d, r], () => gaussianArray(d * r, std, opts.seed ?? 0, sourceIndex));
    this.downBias = make('down.bias', [r], () => new Float32Array(r));
    this.upWeight = make('up.weight', [r, d], () => new Float32Array(r * d));
    this.upBias = make('up.bias', [d], () => new Float32Array(d));
  }

  apply(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t, d] = x.shape;
      const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
      const normed = layerNorm(x2, this.lnWeight as tf.Tensor1D, this.lnBias as tf.Tensor1D, this.eps);
      const hidden = geluNew(tf.add(tf.matMul(normed, this.downWeight as tf.Tensor2D), this.downBias)) as tf.Tensor2D;
      const out = tf.add(x2, tf.add(tf.matMul(hidden, this.upWeight as tf.Tensor2D), this.upBias));
      return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
    });
  }

  namedVariables(): Map<string, tf.Variable> {
    return new Map([
      [`${this.prefix}.ln.weight`, this.lnWeight],
      [`${this.prefix}.ln.bias`, this.lnBias],
      [`${this.prefix}.down.weight`, this.downWeight],
      [`${this.prefix}.down.bias`, this.downBias],
      [`${this.prefix}.up.weight`, this.upWeight],
      [`${this.prefix}.up.bias`, this.upBias],
    ]);
  }

  /** Parameter count: 2·d·r + r + 3·d. */
  get parameterCount(): number {
    return 2 * this.dModel * this.rank + this.rank + 3 * this.dModel;
  }

  dispose(): void {
    for (const v of this.namedVariables().values()) v.dispose();
  }
}

/** N(0, std²) values from the project RNG (Box–Muller), independent of the tfjs backend. */
function gaussianArray(size: number, std: number, seed: number, index: number): Float32Array {
  const rng = createRng(seed * 1_000_003 + 7919 * (index + 1));
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const u1 = rng.next() || Number.MIN_VALUE;
    const u2 = rng.next();
    const radius = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < size) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
