import type * as tf from '@tensorflow/tfjs';
import { AdamW, type AdamWOptions } from './AdamW.js';
import { clipByGlobalNorm } from './clipByGlobalNorm.js';

/**
 * Clip + AdamW, shared by Trainer and the data-parallel workers so that both apply bit-identical
 * updates to identical gradients.
 */
export class UpdateRule {
  readonly optimizer: AdamW;

  constructor(
    variables: Map<string, tf.Variable>,
    adamW: AdamWOptions,
    private readonly gradClip: number,
  ) {
    this.optimizer = new AdamW(variables, adamW);
  }

  /** Consumes (disposes) `grads`; returns the pre-clip global norm. */
  apply(grads: Map<string, tf.Tensor>, lr: number): number {
    const { grads: clipped, norm } = clipByGlobalNorm(grads, this.gradClip);
    for (const g of grads.values()) g.dispose();
    try {
      this.optimizer.apply(clipped, lr);
    } finally {
      for (const g of clipped.values()) g.dispose();
    }
    return norm;
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
