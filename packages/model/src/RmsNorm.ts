import * as tf from '@tensorflow/tfjs';
import type { ParamFactory } from './ParamFactory.js';

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * RMSNorm over the last axis as HF LLaMA computes it in float32: w · x·rsqrt(mean(x²) + eps).
 * Hand-written gradient (autodiff of the composite launches about twice the kernels):
 * x̂ = x·r, ĝ = dy·w, dx = r·(ĝ − x̂·mean(ĝ·x̂)), dw = Σ_rows dy·x̂.
 */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return rmsNormOp(x, weight, tf.scalar(eps)) as tf.Tensor2D;
}

const rmsNormOp = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]): GradResult => {
  const [x, w, eps, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  const d = x.shape[x.shape.length - 1];
  const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.mul(x, x), -1, true), eps)));
  const xhat = tf.mul(x, r);
  save([xhat, r, w]);
  return {
    value: tf.mul(xhat, w),
    gradFunc: (dy, [xh, rs, ws]) =>
      tf.tidy(() => {
        const g = tf.mul(dy, ws);
        const dx = tf.mul(tf.sub(g, tf.mul(xh, tf.mean(tf.mul(g, xh), -1, true))), rs);
        // Column sums as xᵀ·1: the wasm Sum over axis 0 transposes first (see ops.columnSum).
        const rows = tf.reshape(tf.mul(dy, xh), [-1, d]) as tf.Tensor2D;
        const dw = tf.reshape(tf.matMul(rows, tf.ones([rows.shape[0], 1]), true, false), [d]);
        return [dx, dw, tf.zerosLike(eps)];
      }),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor, w: tf.Tensor, eps: tf.Tensor) => tf.Tensor;

/** RMSNorm module (LLaMA `input_layernorm`, `post_attention_layernorm`, `norm`): one weight `<prefix>.weight`. */
export class RmsNorm {
  readonly weight: tf.Variable;

  constructor(
    readonly prefix: string,
    dim: number,
    readonly eps: number,
    params: ParamFactory,
  ) {
    this.weight = params.variable(`${prefix}.weight`, [dim], { kind: 'ones' });
  }

  /** x: [n, d] (callers flatten batch and time once). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return rmsNorm(x, this.weight as tf.Tensor1D, this.eps);
  }

  namedVariables(): [string, tf.Variable][] {
    return [[`${this.prefix}.weight`, this.weight]];
  }

  dispose(): void {
    this.weight.dispose();
  }
}
