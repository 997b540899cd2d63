import * as tf from '@tensorflow/tfjs';
import { groupedAttentionBias, groupedCausalMask } from '../../groupedAttention.js';
import { Linear } from '../../Linear.js';
import { causalAttention } from '../../ops.js';
import type { ParamFactory } from '../../ParamFactory.js';
import { RmsNorm } from '../../RmsNorm.js';
import { applyRotary, RotaryEmbedding } from '../../rotary.js';
import type { BlockContext, BlockModule, LoraHost } from '../../types.js';
import type { LlamaConfig } from './config.js';
import { swiGlu } from './swiGlu.js';

/**
 * LLaMA decoder layer: x + attn(rms(x)), then x + down(silu(gate(rms(x)))·up(rms(x))); nn.Linear
 * weights `[out, in]`. Attention is grouped-query with rotary embeddings (rotate_half layout).
 */
export class LlamaBlock implements BlockModule, LoraHost {
  readonly kind = 'llama.block';
  readonly inputLayernorm: RmsNorm;
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  readonly postAttentionLayernorm: RmsNorm;
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;
  private readonly nHead: number;
  private readonly nKvHead: number;
  private readonly headDim: number;
  private readonly rotary: RotaryEmbedding;

  constructor(
    readonly sourceIndex: number,
    config: LlamaConfig,
    params: ParamFactory,
    prefix = `model.layers.${sourceIndex}`,
  ) {
    const d = config.hiddenSize;
    const inner = config.intermediateSize;
    this.nHead = config.nHead;
    this.nKvHead = config.nKvHead;
    this.headDim = config.headDim;
    const qWidth = config.nHead * config.headDim;
    const kvWidth = config.nKvHead * config.headDim;
    this.inputLayernorm = new RmsNorm(`${prefix}.input_layernorm`, d, config.normEps, params);
    this.qProj = new Linear(`${prefix}.self_attn.q_proj`, d, qWidth, 'out_in', params, { bias: config.qkvBias });
    this.kProj = new Linear(`${prefix}.self_attn.k_proj`, d, kvWidth, 'out_in', params, { bias: config.qkvBias });
    this.vProj = new Linear(`${prefix}.self_attn.v_proj`, d, kvWidth, 'out_in', params, { bias: config.qkvBias });
    this.oProj = new Linear(`${prefix}.self_attn.o_proj`, qWidth, d, 'out_in', params, { bias: config.outputBias });
    this.postAttentionLayernorm = new RmsNorm(`${prefix}.post_attention_layernorm`, d, config.normEps, params);
    this.gateProj = new Linear(`${prefix}.mlp.gate_proj`, d, inner, 'out_in', params, { bias: config.mlpBias });
    this.upProj = new Linear(`${prefix}.mlp.up_proj`, d, inner, 'out_in', params, { bias: config.mlpBias });
    this.downProj = new Linear(`${prefix}.mlp.down_proj`, inner, d, 'out_in', params, { bias: config.mlpBias });
    this.rotary = new RotaryEmbedding(config.rope, 1 / Math.sqrt(config.headDim), config.nHead / config.nKvHead);
  }

  apply(x: tf.Tensor3D, ctx?: BlockContext): tf.Tensor3D {
    const [b, t, d] = x.shape;
    const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
    const h = tf.add(x2, this.attention(this.inputLayernorm.apply(x2), b, t, ctx)) as tf.Tensor2D;
    const m = this.postAttentionLayernorm.apply(h);
    const out = tf.add(h, this.downProj.apply(swiGlu(this.gateProj.apply(m), this.upProj.apply(m))));
    return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
  }

  /** x: [b·t, d] (already normalised) → [b·t, d]. */
  private attention(x: tf.Tensor2D, b: number, t: number, ctx?: BlockContext): tf.Tensor2D {
    const kv = this.nKvHead;
    const rep = this.nHead / kv;
    const hd = this.headDim;
    const rope = this.rotary.tables(b, t, ctx?.positionIds);
    // Query head h = g·rep + r shares kv head g (HF repeat_kv): queries go to [kv, b, t, rep, hd] and are
    // attended as [kv·b, t·rep, hd] against keys [kv·b, t, hd]; each split is one 4-D transpose.
    const q = tf.reshape(tf.transpose(tf.reshape(this.qProj.apply(x), [b, t, kv, rep * hd]), [2, 0, 1, 3]), [kv, b, t, rep, hd]);
    const k = tf.transpose(tf.reshape(this.kProj.apply(x), [b, t, kv, hd]), [2, 0, 1, 3]);
    const v = tf.transpose(tf.reshape(this.vProj.apply(x), [b, t, kv, hd]), [2, 0, 1, 3]);
    const q3 = tf.reshape(applyRotary(q, rope.qCos, rope.qSin), [kv * b, t * rep, hd]) as tf.Tensor3D;
    const k3 = tf.reshape(applyRotary(k, rope.kCos, rope.kSin), [kv * b, t, hd]) as tf.Tensor3D;
    const v3 = tf.reshape(v, [kv * b, t, hd]) as tf.Tensor3D;
    // A [t·rep, t] mask broadcasts over the kv·b attention rows.
    const bias = ctx?.attentionBias ? groupedAttentionBias(ctx.attentionBias, kv, rep) : groupedCausalMask(t, rep);
    const out = causalAttention(q3, k3, v3, bias);
    const merged = tf.reshape(tf.transpose(tf.reshape(out, [kv, b, t, rep * hd]), [1, 2, 0, 3]), [b * t, this.nHead * hd]) as tf.Tensor2D;
    return this.oProj.apply(merged);
  }

  linears(): Map<string, Linear> {
    return new Map([
      ['self_attn.q_proj', this.qProj],
      ['self_attn.k_proj', this.kProj],
      ['self_attn.v_proj', this.vProj],
      ['self_attn.o_proj', this.oProj],
      ['mlp.gate_proj', this.gateProj],
      ['mlp.up_proj', this.upProj],
      ['mlp.down_proj', this.downProj],
    ]);
  }

  namedVariables(): Map<string, tf.Variable> {
    return new Map([
      ...this.qProj.namedVariables(),
      ...this.kProj.namedVariables(),
      ...this.vProj.namedVariables(),
      ...this.oProj.namedVariables(),
      ...this.gateProj.namedVariables(),
      ...this.upProj.namedVariables(),
      ...this.downProj.namedVariables(),
      ...this.inputLayernorm.namedVariables(),
      ...this.postAttentionLayernorm.namedVariables(),
    ]);
  }

  dispose(): void {
    for (const v of this.namedVariables().values()) v.dispose();
  }
}
