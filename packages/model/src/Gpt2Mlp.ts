import * as tf from '@tensorflow/tfjs';
import { geluNew } from '@scaleot/backend';
import { linear } from './ops.js';
import type { ParamFactory } from './ParamFactory.js';

/** GPT-2 MLP: c_fc [d, inner] → gelu_new → c_proj [inner, d]. */
export class Gpt2Mlp {
  readonly cFcW: tf.Variable;
  readonly cFcB: tf.Variable;
  readonly cProjW: tf.Variable;
  readonly cProjB: tf.Variable;

  constructor(
    readonly prefix: string,
    dModel: number,
    nInner: number,
    nLayer: number,
    params: ParamFactory,
  ) {
    this.cFcW = params.variable(`${prefix}.c_fc.weight`, [dModel, nInner], { kind: 'normal', std: 0.02 });
    this.cFcB = params.variable(`${prefix}.c_fc.bias`, [nInner], { kind: 'zeros' });
    this.cProjW = params.variable(`${prefix}.c_proj.weight`, [nInner, dModel], { kind: 'normal', std: 0.02 / Math.sqrt(2 * nLayer) });
    this.cProjB = params.variable(`${prefix}.c_proj.bias`, [dModel], { kind: 'zeros' });
  }

  /** x: [n, d] → [n, d]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    const hidden = geluNew(linear(x, this.cFcW as tf.Tensor2D, this.cFcB as tf.Tensor1D)) as tf.Tensor2D;
    return linear(hidden, this.cProjW as tf.Tensor2D, this.cProjB as tf.Tensor1D);
  }

  namedVariables(): [string, tf.Variable][] {
    return [
      [`${this.prefix}.c_fc.weight`, this.cFcW],
      [`${this.prefix}.c_fc.bias`, this.cFcB],
      [`${this.prefix}.c_proj.weight`, this.cProjW],
      [`${this.prefix}.c_proj.bias`, this.cProjB],
    ];
  }

  dispose(): void {
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}
