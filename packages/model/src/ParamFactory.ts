import * as tf from '@tensorflow/tfjs';
import { ModelError } from './ModelError.js';

/** Weights by canonical name: host arrays, or tensors already on the backend (shared, not copied). */
export type WeightMap = Map<string, Float32Array | tf.Tensor>;

export type InitKind = { kind: 'normal'; std: number } | { kind: 'zeros' } | { kind: 'ones' };

/**
 * Creates float32 variables under canonical names, either from supplied weights (shape checked) or from
 * a seeded initializer. Variables get engine-generated names, so several models can share one engine.
 */
export class ParamFactory {
  private seedCounter = 0;
  readonly created = new Set<string>();

  constructor(
    private readonly weights: WeightMap | undefined,
    private readonly seed: number,
    private readonly trainable: boolean,
    /** Drop each array from `weights` once copied into a variable (loaders pass a private map: bounds peak memory). */
    private readonly releaseWeights = false,
    /**
     * Names this process does not hold (a pipeline stage's other stages' stem tensors): each gets an
     * empty, frozen placeholder variable instead of weights or an init, and must never be computed with.
     * Default: none.
     */
    private readonly absent?: (name: string) => boolean,
  ) {}

  variable(name: string, shape: number[], init: InitKind): tf.Variable {
    const size = shape.reduce((a, b) => a * b, 1);
    const seed = this.seed * 100_003 + this.seedCounter++;
    this.created.add(name);
    if (this.absent?.(name)) return tf.variable(tf.zeros([0]), false);
    if (this.weights) {
      const data = this.weights.get(name);
      if (!data) {
        throw new ModelError('MISSING_TENSOR', `no weights for "${name}" (shape [${shape}]); pass every parameter the config implies or none for a random init`, { where: name });
      }
      const length = data instanceof tf.Tensor ? data.size : data.length;
      if (length !== size) {
        throw new ModelError('SHAPE_MISMATCH', `"${name}" has ${length} values, the config implies [${shape}] = ${size}`, { where: name });
      }
      if (this.releaseWeights) this.weights.delete(name);
      if (data instanceof tf.Tensor) {
        // The variable shares the tensor's backend buffer; a released (owned) tensor is handed over, not copied.
        const v = tf.tidy(() => tf.variable(tf.reshape(data, shape), this.trainable));
        if (this.releaseWeights) data.dispose();
        return v;
      }
      return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), this.trainable));
    }
    return tf.tidy(() => {
      const value = init.kind === 'normal' ? tf.randomNormal(shape, 0, init.std, 'float32', seed) : init.kind === 'zeros' ? tf.zeros(shape) : tf.ones(shape);
      return tf.variable(value, this.trainable);
    });
  }
}
