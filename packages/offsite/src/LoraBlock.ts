import * as tf from '@tensorflow/tfjs';
import { causalMask, geluNew, layerNorm, type BlockModule, type Gpt2Block } from '@scaleot/model';
import type { LoraSpec } from './manifest.js';

/** The dense matrices that get a LoRA branch, relative to `transformer.h.<i>.`. */
export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

/**
 * A GPT-2 block with LoRA on c_attn, c_proj, mlp.c_fc and mlp.c_proj: W·x becomes
 * W·x + (alpha/rank)·B(A·x) with A random (std 1/rank, seeded) and B zero, so the block starts out
 * exactly as the base block. Only the LoRA factors train; `mergedWeights` folds them into the dense
 * weights for export, so the adapter that travels back is plain GPT-2.
 */
export class LoraBlock implements BlockModule {
  readonly kind = 'gpt2.block+lora';
  readonly sourceIndex: number;
  readonly scale: number;
  private readonly a = new Map<string, tf.Variable>();
  private readonly b = new Map<string, tf.Variable>();

  constructor(
    readonly base: Gpt2Block,
    readonly spec: LoraSpec,
    private readonly nHead: number,
    private readonly eps: number,
    seed = 0,
  ) {
    this.sourceIndex = base.sourceIndex;
    this.scale = spec.alpha / spec.rank;
    LORA_TARGETS.forEach((target, k) => {
      const w = this.denseWeight(target);
      const [din, dout] = w.shape;
      // Conv1D weights are [in, out]: A maps in → rank, B maps rank → out.
      this.a.set(target, tf.tidy(() => tf.variable(tf.randomNormal([din, spec.rank], 0, 1 / spec.rank, 'float32', seed * 1009 + this.sourceIndex * 17 + k), true)));
      this.b.set(target, tf.variable(tf.zeros([spec.rank, dout]), true));
    });
  }

  apply(x: tf.Tensor3D): tf.Tensor3D {
    const [b, t, d] = x.shape;
    const blk = this.base;
    const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
    const h1 = layerNorm(x2, blk.ln1.gamma as tf.Tensor1D, blk.ln1.beta as tf.Tensor1D, this.eps);
    const qkv = this.linear('attn.c_attn', h1, blk.attn.cAttnB);
    const h = this.nHead;
    const hd = d / h;
    const heads = tf.transpose(tf.reshape(qkv, [b, t, 3 * h, hd]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(heads, 3, 1);
    const q3 = tf.reshape(tf.mul(q, 1 / Math.sqrt(hd)), [b * h, t, hd]) as tf.Tensor3D;
    const k3 = tf.reshape(k, [b * h, t, hd]) as tf.Tensor3D;
    const v3 = tf.reshape(v, [b * h, t, hd]) as tf.Tensor3D;
    const probs = tf.softmax(tf.add(tf.matMul(q3, k3, false, true), causalMask(t))) as tf.Tensor3D;
    const ctx = tf.matMul(probs, v3);
    const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [b, h, t, hd]), [0, 2, 1, 3]), [b * t, d]) as tf.Tensor2D;
    const afterAttn = tf.add(x2, this.linear('attn.c_proj', merged, blk.attn.cProjB)) as tf.Tensor2D;
    const h2 = layerNorm(afterAttn, blk.ln2.gamma as tf.Tensor1D, blk.ln2.beta as tf.Tensor1D, this.eps);
    const hidden = geluNew(this.linear('mlp.c_fc', h2, blk.mlp.cFcB)) as tf.Tensor2D;
    const out = tf.add(afterAttn, this.linear('mlp.c_proj', hidden, blk.mlp.cProjB));
    return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
  }

  /** The base block's weights under their HF names (frozen while LoRA trains). */
  namedVariables(): Map<string, tf.Variable> {
    return this.base.namedVariables();
  }

  /** The trainable LoRA factors: `transformer.h.<i>.<target>.lora_A` / `.lora_B`. */
  loraVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const target of LORA_TARGETS) {
      out.set(`transformer.h.${this.sourceIndex}.${target}.lora_A`, this.a.get(target)!);
      out.set(`transformer.h.${this.sourceIndex}.${target}.lora_B`, this.b.get(target)!);
    }
    return out;
  }

  /** The block's weights with W + (alpha/rank)·A·B folded in, under the HF names (new tensors). */
  mergedWeights(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.base.namedVariables()) {
      const target = LORA_TARGETS.find((tg) => name === `transformer.h.${this.sourceIndex}.${tg}.weight`);
      out.set(name, target ? tf.tidy(() => tf.add(v, tf.mul(tf.matMul(this.a.get(target)!, this.b.get(target)!), this.scale))) : tf.clone(v));
    }
    return out;
  }

  dispose(): void {
    this.base.dispose();
    for (const v of [...this.a.values(), ...this.b.values()]) v.dispose();
  }

  private denseWeight(target: (typeof LORA_TARGETS)[number]): tf.Variable {
    const blk = this.base;
    return { 'attn.c_attn': blk.attn.cAttnW, 'attn.c_proj': blk.attn.cProjW, 'mlp.c_fc': blk.mlp.cFcW, 'mlp.c_proj': blk.mlp.cProjW }[target];
  }

  private linear(target: (typeof LORA_TARGETS)[number], x: tf.Tensor2D, bias: tf.Variable): tf.Tensor2D {
    const dense = tf.add(tf.matMul(x, this.denseWeight(target) as tf.Tensor2D), bias);
    const low = tf.matMul(tf.matMul(x, this.a.get(target)! as tf.Tensor2D), this.b.get(target)! as tf.Tensor2D);
    return tf.add(dense, tf.mul(low, this.scale)) as tf.Tensor2D;
  }
}
