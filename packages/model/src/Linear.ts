import * as tf from '@tensorflow/tfjs';
import type { WeightLayout } from './families/types.js';
import { addBias } from './ops.js';
import type { InitKind, ParamFactory } from './ParamFactory.js';

/** A low-rank branch added to a dense layer: y += scale·(x·A)·B, A [in, r], B [r, out]. */
export interface LowRankBranch {
  a: tf.Variable;
  b: tf.Variable;
  scale: number;
}

export interface LinearOptions {
  /** Has a bias (default true). */
  bias?: boolean;
  /** Init of the weight when no weights are given (default N(0, 0.02²)). */
  init?: InitKind;
}

/**
 * A dense layer under its HF name (`<name>.weight`, `<name>.bias`), stored in the family's layout:
 * Conv1D `[in, out]` (x·W) or nn.Linear `[out, in]` (x·Wᵀ). A LoRA branch can be attached while an
 * adapter trains and folded into the weight for export, so every family gets LoRA from one place.
 */
export class Linear {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  lora: LowRankBranch | null = null;

  constructor(
    readonly name: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly layout: WeightLayout,
    params: ParamFactory,
    opts: LinearOptions = {},
  ) {
    const shape = layout === 'in_out' ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    this.weight = params.variable(`${name}.weight`, shape, opts.init ?? { kind: 'normal', std: 0.02 });
    this.bias = opts.bias ?? true ? params.variable(`${name}.bias`, [outFeatures], { kind: 'zeros' }) : null;
  }

  /** x [n, in] → [n, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    const dense = this.project(x, this.weight as tf.Tensor2D);
    const y = this.bias ? addBias(dense, this.bias as tf.Tensor1D) : dense;
    if (!this.lora) return y;
    const low = tf.matMul(tf.matMul(x, this.lora.a as tf.Tensor2D), this.lora.b as tf.Tensor2D);
    return tf.add(y, tf.mul(low, this.lora.scale)) as tf.Tensor2D;
  }

  /** x·W for a weight (or a slice of one) in this layer's layout: `w` is [in, k] or [k, in]. */
  project(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
    return this.layout === 'in_out' ? tf.matMul(x, w) : tf.matMul(x, w, false, true);
  }

  /** Output columns [from, from + size) of the weight, in its stored layout (a cheap row or column slice). */
  weightColumns(from: number, size: number): tf.Tensor2D {
    return (this.layout === 'in_out' ? tf.slice(this.weight, [0, from], [this.inFeatures, size]) : tf.slice(this.weight, [from, 0], [size, this.inFeatures])) as tf.Tensor2D;
  }

  /** The weight with the LoRA branch folded in (W + scale·A·B in the stored layout); a new tensor. */
  mergedWeight(): tf.Tensor {
    const lora = this.lora;
    if (!lora) return tf.clone(this.weight);
    return tf.tidy(() => {
      const delta = tf.mul(tf.matMul(lora.a, lora.b), lora.scale);
      return tf.add(this.weight, this.layout === 'in_out' ? delta : tf.transpose(delta));
    });
  }

  namedVariables(): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [[`${this.name}.weight`, this.weight]];
    if (this.bias) out.push([`${this.name}.bias`, this.bias]);
    return out;
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
