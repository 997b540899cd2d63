import type * as tf from '@tensorflow/tfjs';
import type { BlockModule } from './types.js';

/** A block that passes the hidden state through unchanged (placeholder, tests, ablations). */
export class IdentityBlock implements BlockModule {
  readonly kind = 'identity';
  constructor(readonly sourceIndex: number) {}
  apply(x: tf.Tensor3D): tf.Tensor3D {
    return x;
  }
  namedVariables(): Map<string, tf.Variable> {
    return new Map();
  }
  dispose(): void {}
}
