import * as tf from '@tensorflow/tfjs';

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * SwiGLU gate of the LLaMA MLP: silu(g)·u with silu(g) = g·σ(g). Hand-written gradient reusing the
 * saved σ: du = dy·silu(g), dg = dy·u·σ·(1 + g − silu(g)) (fewer kernels than autodiff of the composite).
 */
export function swiGlu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return swiGluOp(gate, up) as tf.Tensor2D;
}

const swiGluOp = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]): GradResult => {
  const [g, u, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  const s = tf.sigmoid(g);
  const a = tf.mul(g, s);
  save([g, u, s, a]);
  return {
    value: tf.mul(a, u),
    gradFunc: (dy, [gs, us, ss, as]) =>
      tf.tidy(() => {
        const du = tf.mul(dy, as);
        const dg = tf.mul(tf.mul(dy, us), tf.mul(ss, tf.add(tf.sub(gs, as), 1)));
        return [dg, du];
      }),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (g: tf.Tensor, u: tf.Tensor) => tf.Tensor;
