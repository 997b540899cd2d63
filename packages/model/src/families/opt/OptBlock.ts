import * as tf from '@tensorflow/tfjs';
import { geluNew } from '@scaleot/backend';
import { groupedAttentionBias } from '../../groupedAttention.js';
import { LayerNorm } from '../../LayerNorm.js';
import { Linear } from '../../Linear.js';
import { causalAttention } from '../../ops.js';
import type { ParamFactory } from '../../ParamFactory.js';
import type { BlockContext, BlockModule, LoraHost } from '../../types.js';
import type { OptActivation, OptConfig } from './config.js';

const SQRT_HALF = Math.SQRT1_2;

function activate(kind: OptActivation, x: tf.Tensor2D): tf.Tensor2D {
  switch (kind) {
    case 'relu':
      return tf.relu(x);
    case 'gelu':
      // torch's exact GELU: 0.5·x·(1 + erf(x/√2)).
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT_HALF)), 1)) as tf.Tensor2D;
    case 'gelu_new':
      return geluNew(x) as tf.Tensor2D;
  }
}

/**
 * OPT decoder layer, pre-LN (x + attn(ln(x)), then x + fc2(act(fc1(ln(x))))) or post-LN
 * (ln(x + attn(x)), then ln(x + fc2(act(fc1(x))))); nn.Linear weights `[out, in]`.
 */
export class OptBlock implements BlockModule, LoraHost {
  readonly kind = 'opt.block';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  readonly selfAttnLayerNorm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly finalLayerNorm: LayerNorm;
  private readonly nHead: number;
  private readonly preLn: boolean;
  private readonly activation: OptActivation;

  constructor(
    readonly sourceIndex: number,
    config: OptConfig,
    params: ParamFactory,
    prefix = `model.decoder.layers.${sourceIndex}`,
  ) {
    const d = config.hiddenSize;
    const bias = { bias: config.enableBias };
    this.nHead = config.nHead;
    this.preLn = config.doLayerNormBefore;
    this.activation = config.activation;
    // HF module order: k, v, q, out.
    this.kProj = new Linear(`${prefix}.self_attn.k_proj`, d, d, 'out_in', params, bias);
    this.vProj = new Linear(`${prefix}.self_attn.v_proj`, d, d, 'out_in', params, bias);
    this.qProj = new Linear(`${prefix}.self_attn.q_proj`, d, d, 'out_in', params, bias);
    this.outProj = new Linear(`${prefix}.self_attn.out_proj`, d, d, 'out_in', params, bias);
    this.selfAttnLayerNorm = new LayerNorm(`${prefix}.self_attn_layer_norm`, d, config.normEps, params);
    this.fc1 = new Linear(`${prefix}.fc1`, d, config.intermediateSize, 'out_in', params, bias);
    this.fc2 = new Linear(`${prefix}.fc2`, config.intermediateSize, d, 'out_in', params, bias);
    this.finalLayerNorm = new LayerNorm(`${prefix}.final_layer_norm`, d, config.normEps, params);
  }

  apply(x: tf.Tensor3D, ctx?: BlockContext): tf.Tensor3D {
    const [b, t, d] = x.shape;
    const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
    const mlp = (y: tf.Tensor2D): tf.Tensor2D => this.fc2.apply(activate(this.activation, this.fc1.apply(y)));
    let out: tf.Tensor2D;
    if (this.preLn) {
      const h = tf.add(x2, this.attention(this.selfAttnLayerNorm.apply(x2), b, t, ctx)) as tf.Tensor2D;
      out = tf.add(h, mlp(this.finalLayerNorm.apply(h))) as tf.Tensor2D;
    } else {
      const h = this.selfAttnLayerNorm.apply(tf.add(x2, this.attention(x2, b, t, ctx)) as tf.Tensor2D);
      out = this.finalLayerNorm.apply(tf.add(h, mlp(h)) as tf.Tensor2D);
    }
    return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
  }

  /** x: [b·t, d] → [b·t, d]. */
  private attention(x: tf.Tensor2D, b: number, t: number, ctx?: BlockContext): tf.Tensor2D {
    const d = x.shape[1];
    const h = this.nHead;
    const hd = d / h;
    const toHeads = (y: tf.Tensor): tf.Tensor3D => tf.reshape(tf.transpose(tf.reshape(y, [b, t, h, hd]), [2, 0, 1, 3]), [h * b, t, hd]) as tf.Tensor3D;
    // HF scales q after its projection, bias included.
    const q = toHeads(tf.mul(this.qProj.apply(x), 1 / Math.sqrt(hd)));
    const ctxOut = causalAttention(q, toHeads(this.kProj.apply(x)), toHeads(this.vProj.apply(x)), ctx?.attentionBias && groupedAttentionBias(ctx.attentionBias, h, 1));
    const merged = tf.reshape(tf.transpose(tf.reshape(ctxOut, [h, b, t, hd]), [1, 2, 0, 3]), [b * t, d]) as tf.Tensor2D;
    return this.outProj.apply(merged);
  }

  linears(): Map<string, Linear> {
    return new Map([
      ['self_attn.k_proj', this.kProj],
      ['self_attn.v_proj', this.vProj],
      ['self_attn.q_proj', this.qProj],
      ['self_attn.out_proj', this.outProj],
      ['fc1', this.fc1],
      ['fc2', this.fc2],
    ]);
  }

  namedVariables(): Map<string, tf.Variable> {
    return new Map([
      ...this.kProj.namedVariables(),
      ...this.vProj.namedVariables(),
      ...this.qProj.namedVariables(),
      ...this.outProj.namedVariables(),
      ...this.selfAttnLayerNorm.namedVariables(),
      ...this.fc1.namedVariables(),
      ...this.fc2.namedVariables(),
      ...this.finalLayerNorm.namedVariables(),
    ]);
  }

  dispose(): void {
    for (const v of this.namedVariables().values()) v.dispose();
  }
}
