import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@scaleot/backend';
import { expectArraysClose, randomArray, randomInts, runOn } from './helpers.js';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('wasm UnsortedSegmentSum', () => {
  it('matches cpu on float32 rows with repeated ids', async () => {
    const x = randomArray(50 * 6, 11);
    const ids = randomInts(50, 12, 9);
    const run = () => tf.unsortedSegmentSum(tf.tensor(x, [50, 6]), tf.tensor(ids, [50], 'int32'), 9);
    const [expected] = await runOn('cpu', run);
    const [actual] = await runOn('wasm', run);
    expectArraysClose(actual, expected, 1e-6, 1e-6);
  });

  it('matches cpu on int32 values and drops out-of-range ids', async () => {
    const x = randomInts(10 * 3, 13, 100);
    const ids = Int32Array.from([0, 3, -1, 3, 7, 1, 1, 2, 0, 4]);
    const run = () => tf.unsortedSegmentSum(tf.tensor(x, [10, 3], 'int32'), tf.tensor(ids, [10], 'int32'), 5);
    const [expected] = await runOn('cpu', run);
    await tf.setBackend('wasm');
    const out = tf.tidy(run);
    expect(out.shape).toEqual([5, 3]);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual(Array.from(expected));
    out.dispose();
  });

  it('sums over multi-dimensional ids (which the cpu kernel does not support)', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    // The op is typed for 1-D ids; the kernel contract (TF's) allows any prefix of x's shape.
    const ids = tf.tensor([[2, 0], [2, 2]], [2, 2], 'int32') as unknown as tf.Tensor1D;
    const out = tf.unsortedSegmentSum(x, ids, 3);
    expect(out.shape).toEqual([3, 2]);
    expect(Array.from(out.dataSync())).toEqual([3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8]);
    tf.dispose([x, ids, out]);
  });

  it('gives the embedding (gather) gradient on wasm as on cpu', async () => {
    const table = randomArray(17 * 8, 14);
    const tokens = randomInts(2 * 12, 15, 17);
    const upstream = randomArray(2 * 12 * 8, 16);
    const run = () => {
      const dy = tf.tensor(upstream, [2, 12, 8]);
      const f = (w: tf.Tensor) => tf.sum(tf.mul(tf.gather(w, tf.tensor(tokens, [2, 12], 'int32')), dy));
      return tf.grad(f)(tf.tensor(table, [17, 8]));
    };
    const [expected] = await runOn('cpu', run);
    const [actual] = await runOn('wasm', run);
    expectArraysClose(actual, expected, 1e-6, 1e-6);
  });
});

describe('wasm GatherV2', () => {
  it('batchDims = 1 matches cpu (shipped kernel returns wrong values)', async () => {
    const x = randomArray(3 * 7 * 4, 21);
    const idx = randomInts(3 * 5, 22, 7);
    const run = () => tf.gather(tf.tensor(x, [3, 7, 4]), tf.tensor(idx, [3, 5], 'int32'), 1, 1);
    const [expected] = await runOn('cpu', run);
    const [actual] = await runOn('wasm', run);
    expectArraysClose(actual, expected, 0, 0);
  });

  it('batchDims = 1 with an outer axis and large rows matches cpu (shipped kernel reads out of bounds)', async () => {
    const x = randomArray(4 * 2 * 600 * 3, 23);
    const idx = randomInts(4 * 9, 24, 600);
    const run = () => tf.gather(tf.tensor(x, [4, 2, 600, 3]), tf.tensor(idx, [4, 9], 'int32'), 2, 1);
    const [expected] = await runOn('cpu', run);
    await tf.setBackend('wasm');
    const out = tf.tidy(run);
    expect(out.shape).toEqual([4, 2, 9, 3]);
    expectArraysClose(out.dataSync(), expected, 0, 0);
    out.dispose();
  });

  it('batchDims = 0 still goes through the shipped kernel and matches cpu', async () => {
    const x = randomArray(300 * 16, 25);
    const idx = randomInts(8 * 32, 26, 300);
    const run = () => tf.gather(tf.tensor(x, [300, 16]), tf.tensor(idx, [8, 32], 'int32'));
    const [expected] = await runOn('cpu', run);
    const [actual] = await runOn('wasm', run);
    expectArraysClose(actual, expected, 0, 0);
  });

  it('rejects an out-of-range index with batchDims = 1', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    expect(() =>
      tf.tidy(() => tf.gather(tf.zeros([2, 3]), tf.tensor([[0], [3]], [2, 1], 'int32'), 1, 1)),
    ).toThrow(/not in \[0, 2\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('wasm OneHot', () => {
  it('writes float32 values (shipped kernel writes int32 bit patterns)', async () => {
    const run = () => tf.oneHot(tf.tensor([2, 0, 5, -1], [4], 'int32'), 4, 3, -1, 'float32');
    const [expected] = await runOn('cpu', run);
    await tf.setBackend('wasm');
    const out = tf.tidy(run);
    expect(out.dtype).toBe('float32');
    expect(Array.from(out.dataSync())).toEqual(Array.from(expected));
    expect(Array.from(out.dataSync()).slice(0, 4)).toEqual([-1, -1, 3, -1]);
    out.dispose();
  });

  it('keeps int32 one-hot working', async () => {
    await tf.setBackend('wasm');
    const out = tf.oneHot(tf.tensor([1, 0], [2], 'int32'), 3);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual([0, 1, 0, 1, 0, 0]);
    out.dispose();
  });
});

describe('wasm Identity (zero-copy)', () => {
  it('shares the buffer with a reference count: the clone outlives its source, no buffer leaks', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numDataBuffers;
    const x = tf.tensor([1.5, -2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    expect(tf.memory().numDataBuffers).toBe(before + 1);
    x.dispose();
    expect(Array.from(await y.data())).toEqual([1.5, -2, 3, 4]);
    y.dispose();
    expect(tf.memory().numDataBuffers).toBe(before);
  });

  it('keeps saved tensors of a gradient intact when the forward inputs are disposed', async () => {
    await tf.setBackend('wasm');
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(v), v)));
    const v = tf.tensor([0.3, -1.2, 2.0]);
    const wasm = await g(v).data();
    await tf.setBackend('cpu');
    const cpu = await g(tf.tensor([0.3, -1.2, 2.0])).data();
    expectArraysClose(wasm, cpu, 1e-6, 1e-6);
    await tf.setBackend('wasm');
  });
});
