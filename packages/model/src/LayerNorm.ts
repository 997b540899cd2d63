import * as tf from '@tensorflow/tfjs';
import { layerNorm } from './ops.js';
import type { ParamFactory } from './ParamFactory.js';

/** LayerNorm over the last axis; HF names `<prefix>.weight` / `<prefix>.bias`. */
export class LayerNorm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(
    readonly prefix: string,
    dim: number,
    readonly eps: number,
    params: ParamFactory,
  ) {
    this.gamma = params.variable(`${prefix}.weight`, [dim], { kind: 'ones' });
    this.beta = params.variable(`${prefix}.bias`, [dim], { kind: 'zeros' });
  }

  /** x: [n, d] (callers flatten batch and time once). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, this.eps);
  }

  namedVariables(): [string, tf.Variable][] {
    return [
      [`${this.prefix}.weight`, this.gamma],
      [`${this.prefix}.bias`, this.beta],
    ];
  }

  dispose(): void {
    this.gamma.dispose();
    this.beta.dispose();
  }
}
