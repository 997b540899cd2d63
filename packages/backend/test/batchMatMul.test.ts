import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, selectBatchMatMul } from '@scaleot/backend';
import { expectArraysClose, maxAbs, randomArray, runOn } from './helpers.js';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

beforeAll(async () => {
  await initBackend('wasm'); // registers the kernel fixes
  selectBatchMatMul(false); // this file tests the wasm kernel; nativeGemm.test.ts the OpenBLAS one
});

/** Operand shapes for C = op(A) op(B) with C [...batch, m, n]. */
function operandShapes(aBatch: number[], bBatch: number[], m: number, k: number, n: number, ta: boolean, tb: boolean) {
  return {
    a: [...aBatch, ...(ta ? [k, m] : [m, k])],
    b: [...bBatch, ...(tb ? [n, k] : [k, n])],
  };
}

/** float64 reference with full (numpy) batch broadcasting. */
function referenceMatMul(
  aValues: Float32Array, aShape: number[], bValues: Float32Array, bShape: number[], ta: boolean, tb: boolean,
): Float64Array {
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const m = ta ? ac : ar;
  const k = ta ? ar : ac;
  const n = tb ? br : bc;
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  const batch = tf.util.sizeFromShape(outBatch);
  const out = new Float64Array(batch * m * n);
  const flatIndex = (shape: number[], coords: number[]) => {
    let index = 0;
    const offset = coords.length - shape.length;
    for (let d = 0; d < shape.length; d++) index = index * shape[d] + (shape[d] === 1 ? 0 : coords[d + offset]);
    return index;
  };
  for (let i = 0; i < batch; i++) {
    const coords = outBatch.length === 0 ? [] : tf.util.indexToLoc(i, outBatch.length, tf.util.computeStrides(outBatch));
    const aOff = flatIndex(aBatch, coords) * m * k;
    const bOff = flatIndex(bBatch, coords) * k * n;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let j = 0; j < k; j++) {
          const av = aValues[aOff + (ta ? j * m + r : r * k + j)];
          const bv = bValues[bOff + (tb ? c * k + j : j * n + c)];
          sum += av * bv;
        }
        out[i * m * n + r * n + c] = sum;
      }
    }
  }
  return out;
}

// Sums run in a different order (XNNPACK float32 FMA vs cpu): compare against the output scale.
function expectMatMulClose(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expectArraysClose(actual, expected, 1e-5 * Math.max(1, maxAbs(expected)), 1e-5);
}

const layouts: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const cases: Array<{ name: string; aBatch: number[]; bBatch: number[]; m: number; k: number; n: number; cpuWrong?: boolean }> = [
  { name: '2-D odd sizes', aBatch: [], bBatch: [], m: 37, k: 53, n: 29 },
  { name: '2-D wide output (swapped plan)', aBatch: [], bBatch: [], m: 61, k: 3, n: 70 },
  { name: 'vector-like m=1', aBatch: [], bBatch: [], m: 1, k: 17, n: 9 },
  { name: 'k=1 outer product', aBatch: [], bBatch: [], m: 5, k: 1, n: 7 },
  { name: 'batched 3', aBatch: [3], bBatch: [3], m: 13, k: 21, n: 11 },
  { name: 'rank 4 batched', aBatch: [2, 3], bBatch: [2, 3], m: 9, k: 7, n: 12 },
  { name: 'broadcast b batch 1', aBatch: [4], bBatch: [1], m: 10, k: 6, n: 5 },
  { name: 'broadcast a batch 1', aBatch: [1], bBatch: [4], m: 10, k: 6, n: 5 },
  { name: 'rank 3 x rank 2', aBatch: [3], bBatch: [], m: 8, k: 19, n: 4 },
  { name: 'rank 2 x rank 3', aBatch: [], bBatch: [3], m: 8, k: 19, n: 4 },
  // The cpu kernel gets this one wrong (batch max(2, 3) instead of 2 x 3): reference only.
  { name: 'two-sided broadcast', aBatch: [2, 1], bBatch: [1, 3], m: 6, k: 5, n: 7, cpuWrong: true },
];

describe('wasm BatchMatMul matches cpu and a float64 reference', () => {
  for (const c of cases) {
    for (const [ta, tb] of layouts) {
      it(`${c.name} transposeA=${ta} transposeB=${tb}`, async () => {
        const { a, b } = operandShapes(c.aBatch, c.bBatch, c.m, c.k, c.n, ta, tb);
        const aValues = randomArray(tf.util.sizeFromShape(a), 1);
        const bValues = randomArray(tf.util.sizeFromShape(b), 2);
        const run = () => tf.matMul(tf.tensor(aValues, a), tf.tensor(bValues, b), ta, tb);
        await tf.setBackend('wasm');
        const out = tf.tidy(run);
        const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(c.aBatch, c.bBatch);
        expect(out.shape).toEqual([...outBatch, c.m, c.n]);
        const actual = Float32Array.from(out.dataSync());
        out.dispose();
        expectMatMulClose(actual, referenceMatMul(aValues, a, bValues, b, ta, tb));
        if (!c.cpuWrong) {
          const [expected] = await runOn('cpu', run);
          expectMatMulClose(actual, expected);
        }
      });
    }
  }

  it('is the kernel registered for wasm', () => {
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).toBe('batchMatMulWasm');
  });

  it('empty operands give an empty or zero result', async () => {
    await tf.setBackend('wasm');
    const empty = tf.matMul(tf.zeros([0, 4]), tf.zeros([4, 3]));
    expect(empty.shape).toEqual([0, 3]);
    const zeroK = tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3]));
    expect(Array.from(zeroK.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    tf.dispose([empty, zeroK]);
  });

  it('leaves no tensors or heap buffers behind', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor(randomArray(4 * 9 * 7, 3), [4, 9, 7]);
    const b = tf.tensor(randomArray(7 * 5, 4), [7, 5]);
    const before = tf.memory().numTensors;
    const dataIdsBefore = tf.backend().numDataIds();
    for (const [ta, tb] of layouts) {
      const x = ta ? tf.transpose(a, [0, 2, 1]) : a;
      const y = tb ? tf.transpose(b) : b;
      tf.matMul(x, y, ta, tb).dispose();
      if (x !== a) x.dispose();
      if (y !== b) y.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.backend().numDataIds()).toBe(dataIdsBefore);
    tf.dispose([a, b]);
  });
});

describe('wasm matMul gradients match cpu', () => {
  const gradCases: Array<{ name: string; batch: number[]; m: number; k: number; n: number }> = [
    { name: '2-D', batch: [], m: 11, k: 17, n: 13 },
    { name: 'batched', batch: [3], m: 7, k: 9, n: 5 },
    { name: 'rank 4 (attention-like)', batch: [2, 2], m: 6, k: 4, n: 6 },
  ];
  for (const c of gradCases) {
    for (const [ta, tb] of layouts) {
      it(`${c.name} transposeA=${ta} transposeB=${tb}`, async () => {
        const { a, b } = operandShapes(c.batch, c.batch, c.m, c.k, c.n, ta, tb);
        const aValues = randomArray(tf.util.sizeFromShape(a), 5);
        const bValues = randomArray(tf.util.sizeFromShape(b), 6);
        const wValues = randomArray(tf.util.sizeFromShape([...c.batch, c.m, c.n]), 7);
        const run = () => {
          const w = tf.tensor(wValues, [...c.batch, c.m, c.n]);
          const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), w));
          return tf.grads(f)([tf.tensor(aValues, a), tf.tensor(bValues, b)]);
        };
        const expected = await runOn('cpu', run);
        const actual = await runOn('wasm', run);
        expectMatMulClose(actual[0], expected[0]);
        expectMatMulClose(actual[1], expected[1]);
      });
    }
  }
});
