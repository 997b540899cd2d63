import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ScaleotError } from '@scaleot/core';
import { crossEntropyPerToken, geluNew, initBackend } from '@scaleot/backend';
import { expectArraysClose, randomArray, randomInts, runOn } from './helpers.js';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

beforeAll(async () => {
  await initBackend('wasm');
});

const C = Math.sqrt(2 / Math.PI);
const geluRef = (x: number) => 0.5 * x * (1 + Math.tanh(C * (x + 0.044715 * x ** 3)));
const geluSlopeRef = (x: number) => (geluRef(x + 1e-6) - geluRef(x - 1e-6)) / 2e-6; // float64 central difference

describe('geluNew', () => {
  const xs = Float32Array.from([-6, -3, -1.5, -0.5, -1e-3, 0, 1e-3, 0.3, 1, 2.5, 4, 8]);
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`matches the float64 formula and its derivative on ${backend}`, async () => {
      const [value, slope] = await runOn(backend, () => {
        const x = tf.tensor(xs);
        return [geluNew(x), tf.grad((v: tf.Tensor) => tf.sum(geluNew(v)))(x)];
      });
      expectArraysClose(value, Array.from(xs, geluRef), 1e-6, 1e-5);
      expectArraysClose(slope, Array.from(xs, geluSlopeRef), 1e-5, 1e-4);
    });
  }

  it('scales the upstream gradient and keeps the input shape', async () => {
    const [grad] = await runOn('wasm', () => {
      const x = tf.tensor(xs.slice(0, 6), [2, 3]);
      const dy = tf.tensor([1, -2, 3, 0.5, 0, 4], [2, 3]);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(geluNew(v), dy)))(x);
      expect(g.shape).toEqual([2, 3]);
      return g;
    });
    const dy = [1, -2, 3, 0.5, 0, 4];
    expectArraysClose(grad, Array.from(xs.slice(0, 6), (x, i) => geluSlopeRef(x) * dy[i]), 1e-5, 1e-4);
  });
});

/** float64 NLL and d NLL / d logits for logits [rows, vocab]. */
function crossEntropyRef(logits: Float32Array, targets: Int32Array, vocab: number) {
  const rows = targets.length;
  const nll = new Float64Array(rows);
  const grad = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[r * vocab + v]);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[r * vocab + v] - max);
    const lse = max + Math.log(sum);
    nll[r] = lse - logits[r * vocab + targets[r]];
    for (let v = 0; v < vocab; v++) grad[r * vocab + v] = Math.exp(logits[r * vocab + v] - lse) - (v === targets[r] ? 1 : 0);
  }
  return { nll, grad };
}

describe('crossEntropyPerToken', () => {
  const [batch, seq, vocab] = [2, 5, 11];
  const logits = randomArray(batch * seq * vocab, 31, 4);
  const targets = randomInts(batch * seq, 32, vocab);
  const ref = crossEntropyRef(logits, targets, vocab);

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`gives per-position NLL and its gradient on ${backend}`, async () => {
      const [nll, grad] = await runOn(backend, () => {
        const x = tf.tensor(logits, [batch, seq, vocab]);
        const t = tf.tensor(targets, [batch, seq], 'int32');
        const out = crossEntropyPerToken(x, t);
        expect(out.shape).toEqual([batch, seq]);
        expect(out.dtype).toBe('float32');
        // d(mean NLL)/d logits
        const g = tf.grad((v: tf.Tensor) => tf.mean(crossEntropyPerToken(v, t)))(x);
        expect(g.shape).toEqual([batch, seq, vocab]);
        return [out, g];
      });
      expectArraysClose(nll, ref.nll, 1e-5, 1e-5);
      expectArraysClose(grad, Array.from(ref.grad, (g) => g / (batch * seq)), 1e-6, 1e-4);
    });
  }

  it('weights the gradient by the upstream gradient per position', async () => {
    const weights = randomArray(batch * seq, 33);
    const [grad] = await runOn('wasm', () => {
      const t = tf.tensor(targets, [batch, seq], 'int32');
      const w = tf.tensor(weights, [batch, seq]);
      return tf.grad((v: tf.Tensor) => tf.sum(tf.mul(crossEntropyPerToken(v, t), w)))(tf.tensor(logits, [batch, seq, vocab]));
    });
    expectArraysClose(grad, Array.from(ref.grad, (g, i) => g * weights[Math.floor(i / vocab)]), 1e-5, 1e-4);
  });

  it('is stable for huge logits', async () => {
    const big = Float32Array.from([1e4, 0, -1e4, 3e4, 3e4 - 2, 3e4 - 50]);
    const [nll] = await runOn('wasm', () => crossEntropyPerToken(tf.tensor(big, [2, 3]), tf.tensor([1, 0], [2], 'int32')));
    const expected = crossEntropyRef(big, Int32Array.from([1, 0]), 3).nll;
    expect(Array.from(nll).every(Number.isFinite)).toBe(true);
    expectArraysClose(nll, expected, 1e-3, 1e-5);
  });

  it('rejects mismatched shapes and non-int32 targets', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([2, 3, 4]);
    expect(() => crossEntropyPerToken(x, tf.zeros([2, 4], 'int32'))).toThrow(ScaleotError);
    expect(() => crossEntropyPerToken(x, tf.zeros([2, 3]))).toThrow(/int32/);
    tf.dispose(x);
  });

  it('leaves no tensors behind after a gradient step', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(logits, [batch, seq, vocab]);
    const t = tf.tensor(targets, [batch, seq], 'int32');
    const before = tf.memory().numTensors;
    const { value, grads } = tf.valueAndGrads((v: tf.Tensor) => tf.mean(crossEntropyPerToken(v, t)))([x]);
    tf.dispose([value, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, t]);
  });
});
