import * as tf from '@tensorflow/tfjs';
import { crossEntropyPerToken, type CausalLM } from '@scaleot/model';

/**
 * NLL of rows of T tokens where the model reads only the first T − 1 and predicts tokens 1…T−1:
 * [b, T] → [b, T − 1]. The protocols use blocks of ctx + 1 tokens, one more than n_positions, so the
 * last token may only ever be a target (the model's own tokenNll would embed it too).
 */
export function shiftedTokenNll(model: CausalLM, ids: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, t] = ids.shape;
    const inputs = tf.slice(ids, [0, 0], [b, t - 1]);
    const targets = tf.slice(ids, [0, 1], [b, t - 1]);
    const logits = model.head(model.runBlocks(model.embed(inputs)));
    return crossEntropyPerToken(logits, targets) as tf.Tensor2D;
  });
}

/** Σ NLL · mask over a batch (mask [b, T − 1], 1 where a target counts). */
export function shiftedLossSum(model: CausalLM, ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.mul(shiftedTokenNll(model, ids), mask)));
}

/** An `NllFn` for @scaleot/data's scorers; the caller bounds the batch size (wasm heap). */
export function nllScorer(model: CausalLM): (batch: Int32Array[]) => Promise<Float32Array[]> {
  return async (batch) => {
    const t = batch[0].length;
    const flat = new Int32Array(batch.length * t);
    batch.forEach((row, i) => flat.set(row, i * t));
    const nll = tf.tidy(() => shiftedTokenNll(model, tf.tensor2d(flat, [batch.length, t], 'int32')));
    const values = (await nll.data()) as Float32Array;
    nll.dispose();
    return batch.map((_, i) => values.slice(i * (t - 1), (i + 1) * (t - 1)));
  };
}

/** A `LogprobFn`: the negated NLL. */
export function logprobScorer(model: CausalLM): (batch: Int32Array[]) => Promise<Float32Array[]> {
  const nll = nllScorer(model);
  return async (batch) => (await nll(batch)).map((row) => row.map((v) => -v));
}
