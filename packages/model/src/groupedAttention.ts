import * as tf from '@tensorflow/tfjs';
import { causalMask } from './ops.js';

// Grouped-query attention without repeating keys and values: the `rep` query heads that share a
// key/value head become extra query rows, so attention runs over [kvHeads·b, t·rep, hd] queries
// (row i·rep + r: position i, head r of the group) against [kvHeads·b, t, hd] keys: bigger matmuls,
// no tiled K/V copies, no reduction of their gradients, and the head split stays a 4-D transpose
// with rep·hd contiguous values. The masks below follow that layout.

const groupedMasks = new Map<string, tf.Tensor2D>();

/** Additive causal mask for grouped queries: [t·rep, t], each row of causalMask(t) repeated `rep` times; cached. */
export function groupedCausalMask(t: number, rep: number): tf.Tensor2D {
  if (rep === 1) return causalMask(t);
  const key = `${tf.getBackend()}:${t}:${rep}`;
  let mask = groupedMasks.get(key);
  if (!mask || mask.isDisposed) {
    const data = new Float32Array(rep * t * t);
    for (let i = 0; i < t; i++) for (let r = 0; r < rep; r++) for (let j = i + 1; j < t; j++) data[(i * rep + r) * t + j] = -1e9;
    mask = tf.keep(tf.tensor2d(data, [t * rep, t]));
    groupedMasks.set(key, mask);
  }
  return mask;
}

/** Derived biases per source bias tensor, so every block of one forward tiles it once. */
const groupedBiases = new WeakMap<tf.Tensor, Map<string, tf.Tensor3D>>();

/**
 * A padded batch's bias [b, t, t] laid out for `groups` head groups of `rep` query heads each:
 * [groups·b, t·rep, t] (group-major, each query row repeated per head, like the attention's queries). rep = 1 gives the plain
 * head-major [heads·b, t, t]. Cached per source tensor for the forward it belongs to.
 */
export function groupedAttentionBias(bias: tf.Tensor3D, groups: number, rep: number): tf.Tensor3D {
  if (groups === 1 && rep === 1) return bias;
  let perBias = groupedBiases.get(bias);
  if (!perBias) {
    perBias = new Map();
    groupedBiases.set(bias, perBias);
  }
  const key = `${groups}:${rep}`;
  let out = perBias.get(key);
  if (!out || out.isDisposed) {
    const [b, t] = bias.shape;
    out = tf.tidy(() => {
      const rows = rep === 1 ? bias : tf.reshape(tf.tile(tf.reshape(bias, [b, t, 1, t]), [1, 1, rep, 1]), [b, t * rep, t]);
      return (groups === 1 ? rows : tf.tile(rows, [groups, 1, 1])) as tf.Tensor3D;
    });
    perBias.set(key, out);
  }
  return out;
}
