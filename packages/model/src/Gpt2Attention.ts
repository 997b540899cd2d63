import * as tf from '@tensorflow/tfjs';
import { causalAttention, linear } from './ops.js';
import type { ParamFactory } from './ParamFactory.js';

/** GPT-2 causal self-attention: fused Q|K|V Conv1D ([d, 3d], x·W + b), output Conv1D. */
export class Gpt2Attention {
  readonly cAttnW: tf.Variable;
  readonly cAttnB: tf.Variable;
  readonly cProjW: tf.Variable;
  readonly cProjB: tf.Variable;

  constructor(
    readonly prefix: string,
    readonly dModel: number,
    readonly nHead: number,
    nLayer: number,
    params: ParamFactory,
  ) {
    this.cAttnW = params.variable(`${prefix}.c_attn.weight`, [dModel, 3 * dModel], { kind: 'normal', std: 0.02 });
    this.cAttnB = params.variable(`${prefix}.c_attn.bias`, [3 * dModel], { kind: 'zeros' });
    // HF GPT-2 scales residual projections by 1/sqrt(2·n_layer) at init.
    this.cProjW = params.variable(`${prefix}.c_proj.weight`, [dModel, dModel], { kind: 'normal', std: 0.02 / Math.sqrt(2 * nLayer) });
    this.cProjB = params.variable(`${prefix}.c_proj.bias`, [dModel], { kind: 'zeros' });
  }

  /** x: [b·t, d] (already normalised) → [b·t, d]. */
  apply(x: tf.Tensor2D, b: number, t: number): tf.Tensor2D {
    const d = this.dModel;
    const h = this.nHead;
    const hd = d / h;
    // Q, K, V as three matmuls against column slices of the packed c_attn weight (slicing [d, 3d] is
    // cheap; splitting the [n, 3d] activations is a slow strided copy on wasm). Each goes to
    // [h·b, t, hd] with one transpose that keeps hd contiguous; attention runs over (head, batch) pairs.
    const project = (part: number): tf.Tensor3D => {
      const w = tf.slice(this.cAttnW, [0, part * d], [d, d]) as tf.Tensor2D;
      const bias = tf.slice(this.cAttnB, [part * d], [d]) as tf.Tensor1D;
      const y = linear(x, w, bias);
      return tf.reshape(tf.transpose(tf.reshape(y, [b, t, h, hd]), [2, 0, 1, 3]), [h * b, t, hd]) as tf.Tensor3D;
    };
    const q3 = tf.mul(project(0), 1 / Math.sqrt(hd)) as tf.Tensor3D;
    const k3 = project(1);
    const v3 = project(2);
    const ctx = causalAttention(q3, k3, v3);
    const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [h, b, t, hd]), [1, 2, 0, 3]), [b * t, d]) as tf.Tensor2D;
    return linear(merged, this.cProjW as tf.Tensor2D, this.cProjB as tf.Tensor1D);
  }

  namedVariables(): [string, tf.Variable][] {
    return [
      [`${this.prefix}.c_attn.weight`, this.cAttnW],
      [`${this.prefix}.c_attn.bias`, this.cAttnB],
      [`${this.prefix}.c_proj.weight`, this.cProjW],
      [`${this.prefix}.c_proj.bias`, this.cProjB],
    ];
  }

  dispose(): void {
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}
