import * as tf from '@tensorflow/tfjs';
import type { ParamFactory } from './ParamFactory.js';

/**
 * The output projection: the token embedding itself when tied (HF's default for GPT-2 and OPT, not
 * stored), else its own `lm_head.weight` [V, d]. Logits = h·Eᵀ either way.
 */
export class LmHead {
  readonly weight: tf.Variable;
  readonly name = 'lm_head.weight';

  constructor(
    embedding: tf.Variable,
    readonly tied: boolean,
    params: ParamFactory,
    /** [V, width] of an untied head (default: the embedding's shape; stems pass it so a stage without the embedding still builds its head). */
    shape: number[] = embedding.shape.slice(),
  ) {
    this.weight = tied ? embedding : params.variable(this.name, shape, { kind: 'normal', std: 0.02 });
  }

  /** [n, d] → [n, V]. */
  apply(h: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(h, this.weight as tf.Tensor2D, false, true);
  }

  /** The head's own weight when untied; nothing when it is the embedding. */
  namedVariables(): [string, tf.Variable][] {
    return this.tied ? [] : [[this.name, this.weight]];
  }

  dispose(): void {
    if (!this.tied) this.weight.dispose();
  }
}
