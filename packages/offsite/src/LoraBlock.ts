import * as tf from '@tensorflow/tfjs';
import type { BlockContext, BlockModule, Linear, LoraHost } from '@scaleot/model';
import { OffsiteError } from './OffsiteError.js';
import type { LoraSpec } from './manifest.js';

/** A block whose dense layers LoRA can wrap (every family's original block). */
export function isLoraHost(block: BlockModule): block is BlockModule & LoraHost {
  return typeof (block as Partial<LoraHost>).linears === 'function';
}

/**
 * An original block with LoRA on every dense layer the family lists (attention and MLP): W·x becomes
 * W·x + (alpha/rank)·B(A·x) with A random (std 1/rank, seeded) and B zero, so the block starts out
 * exactly as the base block. Only the LoRA factors train; `mergedWeights` folds them into the dense
 * weights for export, so the adapter that travels back is a plain block of the family.
 */
export class LoraBlock implements BlockModule {
  readonly kind: string;
  readonly sourceIndex: number;
  readonly scale: number;
  private readonly targets: Linear[];

  constructor(
    readonly base: BlockModule & LoraHost,
    readonly spec: LoraSpec,
    seed = 0,
  ) {
    this.kind = `${base.kind}+lora`;
    this.sourceIndex = base.sourceIndex;
    this.scale = spec.alpha / spec.rank;
    this.targets = [...base.linears().values()];
    if (this.targets.length === 0) throw new OffsiteError('BAD_LORA', `block ${base.sourceIndex} ("${base.kind}") has no dense layer to wrap`, { where: 'lora' });
    this.targets.forEach((linear, k) => {
      if (linear.lora) throw new OffsiteError('BAD_LORA', `"${linear.name}" already carries a LoRA branch`, { where: linear.name });
      // A maps in → rank, B maps rank → out, whatever the stored layout of W.
      const a = tf.tidy(() => tf.variable(tf.randomNormal([linear.inFeatures, spec.rank], 0, 1 / spec.rank, 'float32', seed * 1009 + this.sourceIndex * 17 + k), true));
      const b = tf.variable(tf.zeros([spec.rank, linear.outFeatures]), true);
      linear.lora = { a, b, scale: this.scale };
    });
  }

  apply(x: tf.Tensor3D, ctx?: BlockContext): tf.Tensor3D {
    return this.base.apply(x, ctx);
  }

  /** The base block's weights under their HF names (frozen while LoRA trains). */
  namedVariables(): Map<string, tf.Variable> {
    return this.base.namedVariables();
  }

  /** The trainable LoRA factors: `<linear name>.lora_A` / `.lora_B`. */
  loraVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const linear of this.targets) {
      out.set(`${linear.name}.lora_A`, linear.lora!.a);
      out.set(`${linear.name}.lora_B`, linear.lora!.b);
    }
    return out;
  }

  /** The block's weights with W + (alpha/rank)·A·B folded in, under the HF names (new tensors). */
  mergedWeights(): Map<string, tf.Tensor> {
    const byWeight = new Map(this.targets.map((l) => [`${l.name}.weight`, l]));
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.base.namedVariables()) out.set(name, byWeight.get(name)?.mergedWeight() ?? tf.clone(v));
    return out;
  }

  dispose(): void {
    for (const linear of this.targets) {
      linear.lora?.a.dispose();
      linear.lora?.b.dispose();
      linear.lora = null;
    }
    this.base.dispose();
  }
}
