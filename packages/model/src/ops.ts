import * as tf from '@tensorflow/tfjs';
import { causalMatMul, hasCausalMatMul } from '@scaleot/backend';

// Lean kernels with hand-written gradients: autodiff of the composite forms launches 2–3× more kernels,
// and on wasm every launch costs JS overhead plus a full pass over memory. gelu_new and the
// cross-entropy come from @scaleot/backend (written to the same recipe).

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };
// customGrad computes every input's gradient eagerly (even for frozen inputs): keep such ops small and
// leave the big matmuls to autodiff, whose per-input gradients are pruned to what is being trained.

/** tf.customGrad with the inputs as an array (its typings mix tensors and the save function). */
function customOp(f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => GradResult): (...inputs: tf.Tensor[]) => tf.Tensor {
  const wrapped = (...args: (tf.Tensor | tf.GradSaveFunc)[]) => f(args.slice(0, -1) as tf.Tensor[], args[args.length - 1] as tf.GradSaveFunc);
  return tf.customGrad(wrapped as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => tf.Tensor;
}

/** Column sums of a 2-D tensor as [1, n]·x: the wasm Sum over axis 0 transposes first and is ~3× slower. */
function columnSum(x: tf.Tensor2D): tf.Tensor1D {
  const [n, d] = x.shape;
  // xᵀ·1 measured ~1.5× faster than 1ᵀ·x with the backend's BatchMatMul (M = 1 is a poor fit for XNNPACK).
  return tf.reshape(tf.matMul(x, tf.ones([n, 1]), true, false), [d]);
}

/**
 * y + b for y [n, d], b [d], with the bias gradient as a ones-matmul (see columnSum). The matMul that
 * produces y stays under autodiff, so frozen weights get no gradient computed.
 */
export const addBias: (y: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D = customOp(([y, b]) => ({
  value: tf.add(y, b),
  gradFunc: (dy) => [dy, columnSum(dy as tf.Tensor2D)],
})) as (y: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** HF Conv1D / nn.Linear with [in, out] weights: x·W + b. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return addBias(tf.matMul(x, w), b);
}

/**
 * LayerNorm over the last axis of a 2-D input [n, d]. Gradient in closed form:
 * dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·γ.
 */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  return layerNormOp(x, gamma, beta, tf.scalar(eps)) as tf.Tensor2D;
}

const layerNormOp = customOp(([x, gamma, beta, eps], save) => {
  const d = x.shape[x.shape.length - 1];
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.mul(xc, xc), -1, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  const xhat = tf.mul(xc, rstd);
  save([xhat, rstd, gamma]);
  return {
    value: tf.add(tf.mul(xhat, gamma), beta),
    gradFunc: (dy, saved) => {
      const [xh, rs, g] = saved;
      const gh = tf.mul(dy, g);
      const meanGh = tf.mean(gh, -1, true);
      const meanGhX = tf.mean(tf.mul(gh, xh), -1, true);
      const dx = tf.mul(tf.sub(tf.sub(gh, meanGh), tf.mul(xh, meanGhX)), rs);
      const dGamma = columnSum(tf.reshape(tf.mul(dy, xh), [-1, d]) as tf.Tensor2D);
      const dBeta = columnSum(tf.reshape(dy, [-1, d]) as tf.Tensor2D);
      return [dx, dGamma, dBeta, tf.zerosLike(eps)];
    },
  };
});

/**
 * Causal attention core over [B, t, hd] (B = heads × batch; q already scaled by 1/√hd):
 * softmax(q·kᵀ + bias)·v, with `bias` the cached causal mask [t, t] unless an additive bias is given:
 * [B, t, t] (causal + padding) or a [tq, t] mask shared by every row (grouped queries). The hand-written backward keeps every transposed matmul operand small:
 * dv = (dctxᵀ·p)ᵀ and dk = (qᵀ·ds)ᵀ instead of pᵀ·dctx and dsᵀ·q, which would transpose the
 * [B, t, t] probabilities (autodiff's choice, 2× slower on wasm).
 */
export function causalAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, bias?: tf.Tensor2D | tf.Tensor3D): tf.Tensor3D {
  if (bias === undefined && q.shape[1] === k.shape[1] && hasCausalMatMul()) return blockCausalAttentionOp(q, k, v, causalMask(q.shape[1])) as tf.Tensor3D;
  return attentionOp(q, k, v, bias ?? causalMask(q.shape[1])) as tf.Tensor3D;
}

const attentionOp = customOp(([q, k, v, bias], save) => {
  const probs = tf.softmax(tf.add(tf.matMul(q as tf.Tensor3D, k as tf.Tensor3D, false, true), bias));
  save([q, k, v, probs]);
  return {
    value: tf.matMul(probs as tf.Tensor3D, v as tf.Tensor3D),
    gradFunc: (dctx, [qs, ks, vs, p]) => {
      const dy = dctx as tf.Tensor3D;
      const p3 = p as tf.Tensor3D;
      const dp = tf.matMul(dy, vs as tf.Tensor3D, false, true);
      const dv = tf.transpose(tf.matMul(dy, p3, true, false), [0, 2, 1]);
      const ds = tf.mul(p3, tf.sub(dp, tf.sum(tf.mul(dp, p3), -1, true)));
      const dq = tf.matMul(ds as tf.Tensor3D, ks as tf.Tensor3D);
      const dk = tf.transpose(tf.matMul(qs as tf.Tensor3D, ds as tf.Tensor3D, true, false), [0, 2, 1]);
      return [dq, dk, dv, tf.zerosLike(bias)];
    },
  };
});

/**
 * attentionOp for the plain causal mask on a backend with `causalMatMul` (wasm + OpenBLAS): every
 * product skips the key blocks above the diagonal, whose probabilities are exactly 0, and the
 * backward needs no transposes (dv = pᵀ·dy and dk = dsᵀ·q directly). Same values as attentionOp: the
 * skipped scores are 0 + (−1e9) instead of q·k − 1e9, both exp() to 0.
 */
const blockCausalAttentionOp = customOp(([q, k, v, mask], save) => {
  const probs = tf.softmax(tf.add(causalMatMul(q as tf.Tensor3D, k as tf.Tensor3D, 'scores'), mask)) as tf.Tensor3D;
  save([q, k, v, probs]);
  return {
    value: causalMatMul(probs, v as tf.Tensor3D, 'lower'),
    gradFunc: (dctx, [qs, ks, vs, p]) => {
      const dy = dctx as tf.Tensor3D;
      const p3 = p as tf.Tensor3D;
      const dp = causalMatMul(dy, vs as tf.Tensor3D, 'scores');
      const dv = causalMatMul(p3, dy, 'lowerT');
      // Lower triangular like p: ds is p times a finite factor.
      const ds = tf.mul(p3, tf.sub(dp, tf.sum(tf.mul(dp, p3), -1, true))) as tf.Tensor3D;
      const dq = causalMatMul(ds, ks as tf.Tensor3D, 'lower');
      const dk = causalMatMul(ds, qs as tf.Tensor3D, 'lowerT');
      return [dq, dk, dv, tf.zerosLike(mask)];
    },
  };
});

/**
 * The additive attention bias of a padded batch: [b, t, t], 0 where query i may see key j (j ≤ i and
 * key j is a token), −1e9 elsewhere. `attentionMask` is [b, t] of 1 (token) / 0 (padding).
 */
export function paddedCausalBias(attentionMask: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t] = attentionMask.shape;
    const keys = tf.reshape(tf.cast(attentionMask, 'float32'), [b, 1, t]);
    const visible = tf.mul(keys, tf.reshape(tf.sub(1, tf.reshape(causalMask(t), [1, t, t]).div(-1e9)), [1, t, t]));
    return tf.mul(tf.sub(1, visible), -1e9) as tf.Tensor3D;
  });
}

const causalMasks = new Map<string, tf.Tensor2D>();

/** Additive causal mask [t, t] (0 on and below the diagonal, −1e9 above), cached per backend and length. */
export function causalMask(t: number): tf.Tensor2D {
  const key = `${tf.getBackend()}:${t}`;
  let mask = causalMasks.get(key);
  if (!mask || mask.isDisposed) {
    const data = new Float32Array(t * t);
    for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = -1e9;
    mask = tf.keep(tf.tensor2d(data, [t, t]));
    causalMasks.set(key, mask);
  }
  return mask;
}
