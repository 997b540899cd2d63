import * as tf from '@tensorflow/tfjs';
import { geluNew } from '@scaleot/backend';
import { LayerNorm } from '../../LayerNorm.js';
import { Linear } from '../../Linear.js';
import { groupedAttentionBias } from '../../groupedAttention.js';
import { addBias, causalAttention } from '../../ops.js';
import type { ParamFactory } from '../../ParamFactory.js';
import type { BlockContext, BlockModule, LoraHost } from '../../types.js';
import type { Gpt2Config } from './config.js';

/** Pre-LN GPT-2 block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); Conv1D weights `[in, out]`. */
export class Gpt2Block implements BlockModule, LoraHost {
  readonly kind = 'gpt2.block';
  readonly ln1: LayerNorm;
  readonly cAttn: Linear;
  readonly attnProj: Linear;
  readonly ln2: LayerNorm;
  readonly cFc: Linear;
  readonly mlpProj: Linear;
  private readonly nHead: number;

  constructor(
    readonly sourceIndex: number,
    config: Gpt2Config,
    params: ParamFactory,
    prefix = `transformer.h.${sourceIndex}`,
  ) {
    const d = config.hiddenSize;
    // HF GPT-2 scales residual projections by 1/sqrt(2·n_layer) at init.
    const residualInit = { kind: 'normal', std: 0.02 / Math.sqrt(2 * config.nLayer) } as const;
    this.nHead = config.nHead;
    this.ln1 = new LayerNorm(`${prefix}.ln_1`, d, config.normEps, params);
    this.cAttn = new Linear(`${prefix}.attn.c_attn`, d, 3 * d, 'in_out', params);
    this.attnProj = new Linear(`${prefix}.attn.c_proj`, d, d, 'in_out', params, { init: residualInit });
    this.ln2 = new LayerNorm(`${prefix}.ln_2`, d, config.normEps, params);
    this.cFc = new Linear(`${prefix}.mlp.c_fc`, d, config.intermediateSize, 'in_out', params);
    this.mlpProj = new Linear(`${prefix}.mlp.c_proj`, config.intermediateSize, d, 'in_out', params, { init: residualInit });
  }

  apply(x: tf.Tensor3D, ctx?: BlockContext): tf.Tensor3D {
    const [b, t, d] = x.shape;
    const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
    const afterAttn = tf.add(x2, this.attention(this.ln1.apply(x2), b, t, ctx)) as tf.Tensor2D;
    const out = tf.add(afterAttn, this.mlpProj.apply(geluNew(this.cFc.apply(this.ln2.apply(afterAttn))) as tf.Tensor2D));
    return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
  }

  /** x: [b·t, d] (already normalised) → [b·t, d]. */
  private attention(x: tf.Tensor2D, b: number, t: number, ctx?: BlockContext): tf.Tensor2D {
    const d = x.shape[1];
    const h = this.nHead;
    const hd = d / h;
    const toHeads = (y: tf.Tensor2D): tf.Tensor3D => tf.reshape(tf.transpose(tf.reshape(y, [b, t, h, hd]), [2, 0, 1, 3]), [h * b, t, hd]) as tf.Tensor3D;
    let parts: tf.Tensor2D[];
    if (this.cAttn.lora) {
      const qkv = this.cAttn.apply(x);
      parts = [0, 1, 2].map((p) => tf.slice(qkv, [0, p * d], [b * t, d]) as tf.Tensor2D);
    } else {
      // Q, K, V as three matmuls against column slices of the packed c_attn weight (slicing [d, 3d] is
      // cheap; splitting the [n, 3d] activations is a slow strided copy on wasm).
      parts = [0, 1, 2].map((p) => addBias(this.cAttn.project(x, this.cAttn.weightColumns(p * d, d)), tf.slice(this.cAttn.bias!, [p * d], [d]) as tf.Tensor1D));
    }
    // Each goes to [h·b, t, hd] with one transpose that keeps hd contiguous; attention runs over (head, batch) pairs.
    const q3 = tf.mul(toHeads(parts[0]), 1 / Math.sqrt(hd)) as tf.Tensor3D;
    const ctxOut = causalAttention(q3, toHeads(parts[1]), toHeads(parts[2]), ctx?.attentionBias && groupedAttentionBias(ctx.attentionBias, h, 1));
    const merged = tf.reshape(tf.transpose(tf.reshape(ctxOut, [h, b, t, hd]), [1, 2, 0, 3]), [b * t, d]) as tf.Tensor2D;
    return this.attnProj.apply(merged);
  }

  linears(): Map<string, Linear> {
    return new Map([
      ['attn.c_attn', this.cAttn],
      ['attn.c_proj', this.attnProj],
      ['mlp.c_fc', this.cFc],
      ['mlp.c_proj', this.mlpProj],
    ]);
  }

  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.ln1.namedVariables(), ...this.cAttn.namedVariables(), ...this.attnProj.namedVariables(), ...this.ln2.namedVariables(), ...this.cFc.namedVariables(), ...this.mlpProj.namedVariables()]);
  }

  dispose(): void {
    for (const v of this.namedVariables().values()) v.dispose();
  }
}
