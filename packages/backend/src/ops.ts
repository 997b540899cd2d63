import * as tf from '@tensorflow/tfjs';
import { InvalidInputError } from '@scaleot/core';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * gelu_new of HF GPT-2: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Cubes by
 * multiplication (Pow is slow on wasm). The custom gradient keeps only x for the backward pass
 * instead of every intermediate of the formula.
 */
export function geluNew(x: tf.Tensor): tf.Tensor {
  const gelu = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([input]);
    const value = tf.tidy(() => {
      const cube = tf.mul(tf.mul(input, input), input);
      const t = tf.tanh(tf.mul(tf.add(input, tf.mul(cube, GELU_A)), GELU_C));
      return tf.mul(tf.mul(input, 0.5), tf.add(t, 1));
    });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.tidy(() => {
        const [v] = saved;
        const square = tf.mul(v, v);
        const t = tf.tanh(tf.mul(tf.mul(v, tf.add(tf.mul(square, GELU_A), 1)), GELU_C));
        // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
        const sech2 = tf.sub(1, tf.mul(t, t));
        const inner = tf.mul(tf.add(tf.mul(square, 3 * GELU_A), 1), GELU_C);
        const slope = tf.mul(tf.add(tf.add(t, 1), tf.mul(tf.mul(v, sech2), inner)), 0.5);
        return tf.mul(dy, slope);
      });
    return { value, gradFunc };
  });
  return gelu(x);
}

/**
 * Per-position negative log-likelihood: logits [..., V] (float32), targets [...] (int32, each in
 * [0, V)) -> NLL [...] (float32). Stable (log-softmax). Avoids gather with batchDims (broken on
 * wasm): picks row * V + target from the flattened log-probabilities with a 1-D gather. The
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

  const nll = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, t, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const logProbs = tf.tidy(() => tf.logSoftmax(tf.reshape(x, [rows, vocab])));
    const flatTargets = tf.reshape(t, [rows]);
    save([logProbs, flatTargets]);
    const value = tf.tidy(() => {
      const flatIndex = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(vocab, 'int32')), flatTargets);
      return tf.reshape(tf.neg(tf.gather(tf.reshape(logProbs, [rows * vocab]), flatIndex)), leading);
    });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      tf.tidy(() => {
        const [lp, ft] = saved;
        const oneHot = tf.oneHot(ft, vocab, 1, 0, 'float32');
        const dLogits = tf.mul(tf.sub(tf.exp(lp), oneHot), tf.reshape(dy, [rows, 1]));
        return [tf.reshape(dLogits, x.shape), tf.zerosLike(t)];
      });
    return { value, gradFunc };
  });
  return nll(logits, targets);
}
