import * as tf from '@tensorflow/tfjs';
import { InvalidInputError } from '@scaleot/core';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * gelu_new of HF GPT-2: 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), computed as x·σ(2u) (the
 * same function: 0.5(1 + tanh(u)) = σ(2u)). On wasm, Sigmoid is an XNNPACK kernel (~15× faster than
 * the scalar Tanh); the backward reuses the saved σ instead of recomputing it. x³ by multiplication
 * (Pow is slow on wasm).
 */
export function geluNew(x: tf.Tensor): tf.Tensor {
  return geluOp(x);
}

const geluOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const s = tf.tidy(() => tf.sigmoid(tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), GELU_A)), 2 * SQRT_2_OVER_PI)));
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.tidy(() => {
        const [xs, ss] = saved;
        // d/dx x·σ(2u) = σ + x·σ(1−σ)·2c(1 + 3a·x²)
        const du = tf.add(tf.mul(tf.mul(xs, xs), 2 * SQRT_2_OVER_PI * 3 * GELU_A), 2 * SQRT_2_OVER_PI);
        const slope = tf.add(ss, tf.mul(tf.mul(tf.mul(xs, ss), tf.sub(1, ss)), du));
        return tf.mul(dy, slope);
      }),
  };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * Per-position negative log-likelihood: logits [..., V] (float32), targets [...] (int32, each in
 * [0, V)) -> NLL [...] (float32). Stable. Avoids gather with batchDims (broken on
 * wasm): picks row * V + target from the flattened logits with a 1-D gather. The
 * gradient w.r.t. logits is given directly as softmax - onehot: autodiff through the 1-D gather
 * would scatter into N*V segments, which the cpu backend's UnsortedSegmentSum does in
 * O(segments * N). Targets get no gradient.
 */
export function crossEntropyPerToken(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  const rank = logits.shape.length;
  if (rank < 1) {
    throw new InvalidInputError('logits must have a vocabulary axis (rank >= 1)', { where: 'crossEntropyPerToken' });
  }
  const vocab = logits.shape[rank - 1];
  const leading = logits.shape.slice(0, -1);
  if (targets.shape.length !== leading.length || targets.shape.some((d, i) => d !== leading[i])) {
    throw new InvalidInputError(
      `targets shape [${targets.shape}] must equal logits shape without its last axis [${leading}]`,
      { where: 'crossEntropyPerToken' },
    );
  }
  if (targets.dtype !== 'int32') {
    throw new InvalidInputError(`targets must be int32, got ${targets.dtype}`, { where: 'crossEntropyPerToken' });
  }
  if (logits.dtype !== 'float32') {
    throw new InvalidInputError(`logits must be float32, got ${logits.dtype}`, { where: 'crossEntropyPerToken' });
  }
  const rows = tf.util.sizeFromShape(leading);

  // One softmax (an XNNPACK kernel on wasm; Exp is a slow scalar loop there) serves both passes:
  // NLL = lse − z_t with lse = max(z) − log(max(p)), exact and free of underflow (max(p) ≥ 1/V);
  // gradient = (p − onehot)·dy.
  const nll = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, t, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const flat = tf.reshape(x, [rows, vocab]);
    const flatTargets = tf.reshape(t, [rows]);
    const probs = tf.softmax(flat);
    save([probs, flatTargets]);
    const value = tf.tidy(() => {
      const lse = tf.sub(tf.max(flat, -1), tf.log(tf.max(probs, -1)));
      const flatIndex = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(vocab, 'int32')), flatTargets);
      return tf.reshape(tf.sub(lse, tf.gather(tf.reshape(flat, [rows * vocab]), flatIndex)), leading);
    });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      tf.tidy(() => {
        const [p, ft] = saved;
        const oneHot = tf.oneHot(ft as tf.Tensor1D, vocab, 1, 0, 'float32');
        const dLogits = tf.mul(tf.sub(p, oneHot), tf.reshape(dy, [rows, 1]));
        return [tf.reshape(dLogits, x.shape), tf.zerosLike(t)];
      });
    return { value, gradFunc };
  });
  return nll(logits, targets);
}
