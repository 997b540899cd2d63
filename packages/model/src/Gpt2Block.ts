import * as tf from '@tensorflow/tfjs';
import { Gpt2Attention } from './Gpt2Attention.js';
import { Gpt2Mlp } from './Gpt2Mlp.js';
import { LayerNorm } from './LayerNorm.js';
import type { GPT2Config } from './modelConfig.js';
import type { ParamFactory } from './ParamFactory.js';
import type { BlockModule } from './types.js';

/** Pre-LN GPT-2 block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). */
export class Gpt2Block implements BlockModule {
  readonly kind = 'gpt2.block';
  readonly ln1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln2: LayerNorm;
  readonly mlp: Gpt2Mlp;

  constructor(
    readonly sourceIndex: number,
    config: GPT2Config,
    params: ParamFactory,
  ) {
    const p = `transformer.h.${sourceIndex}`;
    this.ln1 = new LayerNorm(`${p}.ln_1`, config.nEmbd, config.layerNormEpsilon, params);
    this.attn = new Gpt2Attention(`${p}.attn`, config.nEmbd, config.nHead, config.nLayer, params);
    this.ln2 = new LayerNorm(`${p}.ln_2`, config.nEmbd, config.layerNormEpsilon, params);
    this.mlp = new Gpt2Mlp(`${p}.mlp`, config.nEmbd, config.nInner, config.nLayer, params);
  }

  apply(x: tf.Tensor3D): tf.Tensor3D {
    const [b, t, d] = x.shape;
    const x2 = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
    const afterAttn = tf.add(x2, this.attn.apply(this.ln1.apply(x2), b, t)) as tf.Tensor2D;
    const out = tf.add(afterAttn, this.mlp.apply(this.ln2.apply(afterAttn)));
    return tf.reshape(out, [b, t, d]) as tf.Tensor3D;
  }

  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.ln1.namedVariables(), ...this.attn.namedVariables(), ...this.ln2.namedVariables(), ...this.mlp.namedVariables()]);
  }

  dispose(): void {
    this.ln1.dispose();
    this.attn.dispose();
    this.ln2.dispose();
    this.mlp.dispose();
  }
}
