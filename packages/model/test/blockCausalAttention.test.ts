import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasCausalMatMul, initBackend, selectBatchMatMul } from '@scaleot/backend';
import { causalAttention } from '@scaleot/model';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

function random(n: number, seed: number, scale: number): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 1073741824 - 1) * scale;
  }
  return out;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** |a − b| ≤ 1e-5·max|b| + 1e-4·|b| elementwise (block sums run in another order than full products). */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  const atol = 1e-5 * Math.max(1, maxAbs(expected));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) - (atol + 1e-4 * Math.abs(expected[i])));
  expect(worst).toBeLessThanOrEqual(0);
}

beforeAll(async () => {
  await initBackend('wasm');
  selectBatchMatMul(true);
});

describe('causal attention on wasm + OpenBLAS: the block-causal path equals full products', () => {
  for (const [batch, t, hd] of [[8, 256, 32], [3, 100, 16]] as const) {
    it(`B=${batch} t=${t} hd=${hd}: value and dq, dk, dv`, () => {
      expect(hasCausalMatMul()).toBe(true);
      const q = tf.tensor3d(random(batch * t * hd, 1, 1 / Math.sqrt(hd)), [batch, t, hd]);
      const k = tf.tensor3d(random(batch * t * hd, 2, 1), [batch, t, hd]);
      const v = tf.tensor3d(random(batch * t * hd, 3, 1), [batch, t, hd]);
      const w = tf.tensor3d(random(batch * t * hd, 4, 1), [batch, t, hd]);
      const run = () =>
        tf.tidy(() => {
          const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(causalAttention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D), w));
          const value = causalAttention(q, k, v);
          return [value, ...tf.grads(f)([q, k, v])].map((x) => Float32Array.from(x.dataSync()));
        });
      const blockCausal = run();
      const kernel = tf.getKernel('ScaleotCausalMatMul', 'wasm');
      expect(kernel).toBeDefined();
      tf.unregisterKernel('ScaleotCausalMatMul', 'wasm');
      try {
        expect(hasCausalMatMul()).toBe(false);
        const full = run();
        for (let i = 0; i < full.length; i++) expectClose(blockCausal[i], full[i]);
      } finally {
        tf.registerKernel(kernel as tf.KernelConfig);
      }
      tf.dispose([q, k, v, w]);
    });
  }
});
