import * as tf from '@tensorflow/tfjs';
import type { CausalLM } from './types.js';
import { batchTensors, sliceBatch, type TokenBatch } from './TokenBatch.js';

export interface GradientResult {
  /** Same keys and order as the variables; the caller owns (and disposes) the tensors. */
  grads: Map<string, tf.Tensor>;
  /** Σ masked NLL over the batch (not divided). */
  lossSum: number;
}

/**
 * Gradient of Σ(masked NLL of `batch`) / `normalizer` over `variables`, accumulated over micro-batches of
 * `microBatchSize` rows. With normalizer = the global batch's target-token count, summing the results
 * of any split of the global batch (micro-batches, worker shards) gives the big-batch gradient of the
 * mean loss exactly (up to float summation order).
 */
/**
 * Adds one micro-batch's gradients into `acc` (aligned with `vars`), disposing what it replaces:
 * gradient accumulation without keeping every micro-batch's tensors alive.
 */
export function accumulateGradients(acc: (tf.Tensor | undefined)[], vars: readonly tf.Variable[], grads: tf.NamedTensorMap): void {
  vars.forEach((v, i) => {
    const g = grads[v.name];
    if (!g) return;
    const prev = acc[i];
    if (prev === undefined) {
      acc[i] = g;
    } else {
      acc[i] = tf.add(prev, g);
      prev.dispose();
      g.dispose();
    }
  });
}

export function computeGradients(model: CausalLM, variables: Map<string, tf.Variable>, batch: TokenBatch, normalizer: number, microBatchSize = batch.rows): GradientResult {
  const names = [...variables.keys()];
  const vars = [...variables.values()];
  const acc: (tf.Tensor | undefined)[] = vars.map(() => undefined);
  const mb = Math.max(1, Math.floor(microBatchSize));
  const lossSums: tf.Scalar[] = [];
  for (let from = 0; from < batch.rows; from += mb) {
    const part = sliceBatch(batch, from, Math.min(batch.rows, from + mb));
    const { value, grads } = tf.tidy(() => {
      const { ids, lossMask } = batchTensors(part);
      return tf.variableGrads(() => tf.div(model.lossSum(ids, lossMask), normalizer) as tf.Scalar, vars);
    });
    lossSums.push(value);
    accumulateGradients(acc, vars, grads);
  }
  let lossSum = 0;
  if (lossSums.length > 0) {
    const total = tf.tidy(() => tf.mul(lossSums.length === 1 ? lossSums[0] : tf.addN(lossSums), normalizer));
    lossSum = total.dataSync()[0];
    total.dispose();
  }
  tf.dispose(lossSums);
  const out = new Map<string, tf.Tensor>();
  names.forEach((name, i) => out.set(name, acc[i] ?? tf.zerosLike(vars[i])));
  return { grads: out, lossSum };
}
