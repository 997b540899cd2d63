import * as tf from '@tensorflow/tfjs';

/**
 * Scales gradients by min(1, maxNorm / (norm + 1e-6)) (PyTorch's clip_grad_norm_). Always returns new
 * tensors (the inputs are left alone) and the pre-clip global norm as a number (one device sync).
 * maxNorm ≤ 0 or Infinity: no scaling, but still new tensors and the norm.
 */
export function clipByGlobalNorm<T extends tf.Tensor[] | Map<string, tf.Tensor>>(grads: T, maxNorm: number): { grads: T; norm: number } {
  const list = grads instanceof Map ? [...grads.values()] : (grads as tf.Tensor[]);
  return scaleToNorm(grads, list, globalNorm(list), maxNorm);
}

function scaleToNorm<T extends tf.Tensor[] | Map<string, tf.Tensor>>(grads: T, list: tf.Tensor[], norm: number, maxNorm: number): { grads: T; norm: number } {
  const scale = maxNorm > 0 && Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  const scaled = tf.tidy(() => list.map((g) => (scale === 1 ? tf.clone(g) : tf.mul(g, scale))));
  if (grads instanceof Map) {
    const keys = [...grads.keys()];
    return { grads: new Map(keys.map((k, i) => [k, scaled[i]])) as T, norm };
  }
  return { grads: scaled as T, norm };
}

/** sqrt(Σ g²) over every tensor, as a number. */
export function globalNorm(grads: tf.Tensor[]): number {
  if (grads.length === 0) return 0;
  const sq = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.mul(g, g))))));
  const value = sq.dataSync()[0];
  sq.dispose();
  return value;
}

/**
 * `clipByGlobalNorm` reading the norm with an async download: the same result, and the only form
 * that works on the webgpu backend (WebGPU has no synchronous readback in Node).
 */
export async function clipByGlobalNormAsync<T extends tf.Tensor[] | Map<string, tf.Tensor>>(grads: T, maxNorm: number): Promise<{ grads: T; norm: number }> {
  const list = grads instanceof Map ? [...grads.values()] : (grads as tf.Tensor[]);
  let norm = 0;
  if (list.length > 0) {
    const sq = tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.mul(g, g))))));
    norm = (await sq.data())[0];
    sq.dispose();
  }
  return scaleToNorm(grads, list, norm, maxNorm);
}
