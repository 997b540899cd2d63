import * as tf from '@tensorflow/tfjs';
import { ModelError } from './ModelError.js';

/** A batch of token rows as flat typed arrays (row-major), cheap to slice and to post to workers. */
export interface TokenBatch {
  /** int32 [rows, seqLen] */
  ids: Int32Array;
  rows: number;
  seqLen: number;
  /** float [rows, seqLen − 1]: 1 where the next-token target counts (default: all). */
  lossMask?: Float32Array;
}

/** Builds a TokenBatch from equal-length rows. */
export function tokenBatch(rows: ArrayLike<number>[], lossMask?: ArrayLike<number>[]): TokenBatch {
  const seqLen = rows[0]?.length ?? 0;
  const ids = new Int32Array(rows.length * seqLen);
  rows.forEach((r, i) => {
    if (r.length !== seqLen) throw new ModelError('BAD_BATCH', `row ${i} has ${r.length} tokens, row 0 has ${seqLen}`, { where: 'batch' });
    ids.set(r, i * seqLen);
  });
  let mask: Float32Array | undefined;
  if (lossMask) {
    mask = new Float32Array(rows.length * (seqLen - 1));
    lossMask.forEach((r, i) => {
      if (r.length !== seqLen - 1) throw new ModelError('BAD_BATCH', `loss-mask row ${i} has ${r.length} entries, want ${seqLen - 1}`, { where: 'batch' });
      mask!.set(r, i * (seqLen - 1));
    });
  }
  return { ids, rows: rows.length, seqLen, lossMask: mask };
}

/** Rows [from, to) as a new view-backed batch. */
export function sliceBatch(batch: TokenBatch, from: number, to: number): TokenBatch {
  const t = batch.seqLen;
  return {
    ids: batch.ids.subarray(from * t, to * t),
    rows: to - from,
    seqLen: t,
    lossMask: batch.lossMask?.subarray(from * (t - 1), to * (t - 1)),
  };
}

/** Number of target tokens (mask sum, or rows·(seqLen − 1)). */
export function targetTokens(batch: TokenBatch): number {
  if (!batch.lossMask) return batch.rows * (batch.seqLen - 1);
  let s = 0;
  for (const x of batch.lossMask) s += x;
  return s;
}

export function validateBatch(batch: TokenBatch, vocabSize: number, nPositions: number): void {
  const { rows, seqLen, ids, lossMask } = batch;
  if (!(rows >= 1) || !(seqLen >= 2) || ids.length !== rows * seqLen) {
    throw new ModelError('BAD_BATCH', `ids has ${ids.length} values for rows=${rows} × seqLen=${seqLen} (need ≥ 1 row of ≥ 2 tokens)`, { where: 'batch' });
  }
  if (seqLen > nPositions) throw new ModelError('BAD_BATCH', `seqLen ${seqLen} exceeds n_positions ${nPositions}`, { where: 'batch' });
  if (lossMask && lossMask.length !== rows * (seqLen - 1)) {
    throw new ModelError('BAD_BATCH', `lossMask has ${lossMask.length} values, want rows·(seqLen−1) = ${rows * (seqLen - 1)}`, { where: 'batch' });
  }
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocabSize) throw new ModelError('BAD_BATCH', `token id ${ids[i]} at ${i} is outside [0, ${vocabSize})`, { where: 'batch' });
  }
}

export function batchTensors(batch: TokenBatch): { ids: tf.Tensor2D; lossMask?: tf.Tensor2D } {
  return {
    ids: tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32'),
    lossMask: batch.lossMask ? tf.tensor2d(batch.lossMask, [batch.rows, batch.seqLen - 1], 'float32') : undefined,
  };
}
