import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { causalMatMul, hasCausalMatMul, initBackend, nativeGemmStatus, selectBatchMatMul } from '@scaleot/backend';
import { expectArraysClose, maxAbs, randomArray, runOn } from './helpers.js';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * Native vs wasm vs cpu: the same product summed in another order. Tolerance: 1e-5 relative to each
 * element plus 1e-5 of the output's largest magnitude (elements near zero come from cancellation).
 */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expectArraysClose(actual, expected, 1e-5 * Math.max(1, maxAbs(expected)), 1e-5);
}

function shapes(aBatch: number[], bBatch: number[], m: number, k: number, n: number, ta: boolean, tb: boolean) {
  return { a: [...aBatch, ...(ta ? [k, m] : [m, k])], b: [...bBatch, ...(tb ? [n, k] : [k, n])] };
}

/** matMul on the wasm backend with the OpenBLAS kernel (native = true) or the wasm kernel. */
function wasmMatMul(native: boolean, aValues: Float32Array, a: number[], bValues: Float32Array, b: number[], ta: boolean, tb: boolean) {
  const status = selectBatchMatMul(native);
  if (native && status.gemm !== 'openblas') throw new Error(`the OpenBLAS addon is not available: ${status.reason}`);
  return tf.tidy(() => {
    const out = tf.matMul(tf.tensor(aValues, a), tf.tensor(bValues, b), ta, tb);
    return { shape: out.shape, values: Float32Array.from(out.dataSync()) };
  });
}

const layouts: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

describe('native (OpenBLAS) BatchMatMul', () => {
  it('is active when the addon is built (SCALEOT_NATIVE_GEMM unset)', () => {
    const status = selectBatchMatMul(true);
    expect(status.gemm, status.reason).toBe('openblas');
    expect(status.threads).toBe(1);
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).toBe('batchMatMulNative');
  });

  // Random shapes (seeded), every transpose layout, batched, broadcast on either or both sides, and
  // the attention / MLP shapes of the model at a reduced size.
  const next = (() => {
    let s = 12345;
    return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  })();
  const dim = (hi: number) => 1 + Math.floor(next() * hi);
  const cases: Array<{ name: string; aBatch: number[]; bBatch: number[]; m: number; k: number; n: number }> = [
    { name: 'mlp-like [256x64]x[64x344]', aBatch: [], bBatch: [], m: 256, k: 64, n: 344 },
    { name: 'attention-like [6,64,32]x[6,32,64]', aBatch: [6], bBatch: [6], m: 64, k: 32, n: 64 },
    { name: 'rank 3 x rank 2 (folded rows)', aBatch: [3], bBatch: [], m: 17, k: 23, n: 9 },
    { name: 'rank 2 x rank 3', aBatch: [], bBatch: [4], m: 8, k: 19, n: 5 },
    { name: 'broadcast b batch 1', aBatch: [4], bBatch: [1], m: 10, k: 6, n: 5 },
    { name: 'broadcast a batch 1', aBatch: [1], bBatch: [4], m: 10, k: 6, n: 5 },
    { name: 'two-sided broadcast', aBatch: [2, 1], bBatch: [1, 3], m: 6, k: 5, n: 7 },
    { name: 'rank 4 batched', aBatch: [2, 3], bBatch: [2, 3], m: 9, k: 7, n: 12 },
  ];
  for (let i = 0; i < 6; i++) {
    const batch = next() < 0.5 ? [] : [dim(4)];
    cases.push({ name: `random #${i}`, aBatch: batch, bBatch: next() < 0.5 ? batch : [], m: dim(70), k: dim(90), n: dim(70) });
  }
  let seed = 100;
  for (const c of cases) {
    for (const [ta, tb] of layouts) {
      it(`${c.name} [${c.aBatch}|${c.m}x${c.k}] x [${c.bBatch}|${c.k}x${c.n}] transposeA=${ta} transposeB=${tb}: = wasm kernel = cpu`, async () => {
        const { a, b } = shapes(c.aBatch, c.bBatch, c.m, c.k, c.n, ta, tb);
        const aValues = randomArray(tf.util.sizeFromShape(a), seed++);
        const bValues = randomArray(tf.util.sizeFromShape(b), seed++);
        await tf.setBackend('wasm');
        const native = wasmMatMul(true, aValues, a, bValues, b, ta, tb);
        const wasm = wasmMatMul(false, aValues, a, bValues, b, ta, tb);
        expect(native.shape).toEqual(wasm.shape);
        expectClose(native.values, wasm.values);
        // The cpu kernel gets two-sided broadcasting wrong (batch max(2, 3)); batchMatMul.test.ts has its reference.
        if (c.name !== 'two-sided broadcast') {
          const [cpu] = await runOn('cpu', () => tf.matMul(tf.tensor(aValues, a), tf.tensor(bValues, b), ta, tb));
          expectClose(native.values, cpu);
        }
        await tf.setBackend('wasm');
        selectBatchMatMul(true);
      });
    }
  }

  it('gradients through the native kernel equal the wasm kernel', async () => {
    await tf.setBackend('wasm');
    const a = randomArray(2 * 3 * 11 * 7, 7);
    const b = randomArray(2 * 3 * 7 * 5, 8);
    const w = randomArray(2 * 3 * 11 * 5, 9);
    const grads = (native: boolean) => {
      selectBatchMatMul(native);
      return tf.tidy(() => {
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, true, true), tf.tensor(w, [2, 3, 11, 5])));
        return tf.grads(f)([tf.tensor(a, [2, 3, 7, 11]), tf.tensor(b, [2, 3, 5, 7])]).map((g) => Float32Array.from(g.dataSync()));
      });
    };
    const wasm = grads(false);
    const native = grads(true);
    expectClose(native[0], wasm[0]);
    expectClose(native[1], wasm[1]);
  });

  it('empty operands give an empty or zero result, and nothing leaks', async () => {
    await tf.setBackend('wasm');
    selectBatchMatMul(true);
    const before = tf.backend().numDataIds();
    tf.tidy(() => {
      const empty = tf.matMul(tf.zeros([0, 4]), tf.zeros([4, 3]));
      expect(empty.shape).toEqual([0, 3]);
      tf.fill([2, 3], 7); // a dirty block on the heap that the next output may reuse
      const zeroK = tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3]));
      expect(Array.from(zeroK.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    });
    expect(tf.backend().numDataIds()).toBe(before);
  });

  it('still works after the wasm heap grows (the operands are read from the new buffer)', async () => {
    await tf.setBackend('wasm');
    selectBatchMatMul(true);
    const a = tf.tensor(randomArray(64 * 32, 11), [64, 32]);
    const b = tf.tensor(randomArray(32 * 16, 12), [32, 16]);
    const big = tf.zeros([64 * 1024 * 1024 / 4 + 1]); // 64 MiB: forces the heap to grow
    const out = tf.matMul(a, b);
    selectBatchMatMul(false);
    const ref = tf.matMul(a, b);
    selectBatchMatMul(true);
    expectClose(out.dataSync(), ref.dataSync());
    tf.dispose([a, b, big, out, ref]);
  });

  it('loads in a worker thread (context-aware addon) and computes there', async () => {
    const script = `
      const { parentPort } = require('node:worker_threads');
      (async () => {
        const tf = await import('@tensorflow/tfjs');
        const backend = await import('@scaleot/backend');
        await backend.initBackend('wasm');
        const out = tf.matMul(tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]), tf.tensor([1, 0, 0, 1, 1, 1], [3, 2]));
        parentPort.postMessage({ gemm: backend.nativeGemmStatus().gemm, values: Array.from(out.dataSync()) });
      })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
    const run = () =>
      new Promise<{ gemm?: string; values?: number[]; error?: string }>((resolve, reject) => {
        const worker = new Worker(script, { eval: true, env: { ...process.env, SCALEOT_LOG_LEVEL: 'silent' } });
        worker.once('message', (m) => {
          void worker.terminate();
          resolve(m as { gemm?: string; values?: number[]; error?: string });
        });
        worker.once('error', reject);
      });
    // Two workers at once, then a second round: each loads its own instance of the addon.
    const results = [...(await Promise.all([run(), run()])), await run()];
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.gemm).toBe('openblas');
      expect(r.values).toEqual([4, 5, 10, 11]);
    }
  });
});

describe('causal attention products (OpenBLAS, skipping the blocks above the diagonal)', () => {
  /** A lower-triangular [B,t,t] (zero above the diagonal, like causal probabilities). */
  function lower(batch: number, t: number, seed: number): tf.Tensor3D {
    const values = randomArray(batch * t * t, seed);
    for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) values[b * t * t + i * t + j] = 0;
    return tf.tensor3d(values, [batch, t, t]);
  }

  // t = 64 is one block, 100 and 200 are ragged (blocks of 64), 256 is the model's window.
  for (const [batch, t, d] of [[3, 64, 8], [2, 100, 16], [2, 200, 5], [4, 256, 32], [1, 1, 4]] as const) {
    it(`B=${batch} t=${t} d=${d}: scores, lower and lowerT equal the full products where the mask keeps them`, async () => {
      await tf.setBackend('wasm');
      selectBatchMatMul(true);
      expect(hasCausalMatMul()).toBe(true);
      tf.tidy(() => {
        const q = tf.tensor3d(randomArray(batch * t * d, t + 1), [batch, t, d]);
        const k = tf.tensor3d(randomArray(batch * t * d, t + 2), [batch, t, d]);
        const l = lower(batch, t, t + 3);
        const keep = tf.linalg.bandPart(tf.ones([t, t]), -1, 0); // 1 on and below the diagonal
        // scores: exact on and below the diagonal; what the block skip leaves above it is masked later.
        const scores = causalMatMul(q, k, 'scores');
        expectClose(tf.mul(scores, keep).dataSync(), tf.mul(tf.matMul(q, k, false, true), keep).dataSync());
        expectClose(causalMatMul(l, k, 'lower').dataSync(), tf.matMul(l, k).dataSync());
        expectClose(causalMatMul(l, k, 'lowerT').dataSync(), tf.matMul(l, k, true, false).dataSync());
      });
    });
  }

  it('is not registered when the wasm kernel is selected (the model then uses full products)', async () => {
    await tf.setBackend('wasm');
    selectBatchMatMul(false);
    expect(hasCausalMatMul()).toBe(false);
    selectBatchMatMul(true);
    expect(hasCausalMatMul()).toBe(true);
    await tf.setBackend('cpu');
    expect(hasCausalMatMul()).toBe(false);
    await tf.setBackend('wasm');
  });
});

describe('fallback to the wasm kernel', () => {
  it('SCALEOT_NATIVE_GEMM=0 registers the wasm kernel, which still computes', async () => {
    await tf.setBackend('wasm');
    const status = selectBatchMatMul(true, { ...process.env, SCALEOT_NATIVE_GEMM: '0' });
    expect(status).toMatchObject({ gemm: 'wasm', code: 'DISABLED' });
    expect(nativeGemmStatus()?.gemm).toBe('wasm');
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).toBe('batchMatMulWasm');
    const out = tf.matMul(tf.tensor([1, 2, 3, 4], [2, 2]), tf.tensor([1, 1, 1, 1], [2, 2]), false, true);
    expect(Array.from(out.dataSync())).toEqual([3, 3, 7, 7]);
    out.dispose();
    selectBatchMatMul(true);
  });

  it('a process with SCALEOT_NATIVE_GEMM=0 logs exactly one line about it and runs on the wasm kernel', () => {
    const script = `
      import * as tf from '@tensorflow/tfjs';
      import { initBackend, nativeGemmStatus } from '@scaleot/backend';
      await initBackend('wasm');
      await initBackend('cpu');
      await initBackend('wasm');
      const out = tf.matMul(tf.tensor([1, 2, 3, 4], [2, 2]), tf.tensor([1, 0, 0, 1], [2, 2]));
      console.log(JSON.stringify({ gemm: nativeGemmStatus().gemm, values: Array.from(out.dataSync()) }));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, SCALEOT_NATIVE_GEMM: '0', SCALEOT_LOG_LEVEL: 'info', SCALEOT_LOG_FORMAT: 'json' },
      timeout: 60_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const lines = `${child.stdout}\n${child.stderr}`.split('\n');
    const fallback = lines.filter((l) => l.includes('native GEMM unavailable'));
    expect(fallback).toHaveLength(1);
    expect(JSON.parse(fallback[0])).toMatchObject({ name: 'backend', code: 'DISABLED' });
    const result = JSON.parse(lines.find((l) => l.startsWith('{"gemm"')) ?? '{}') as { gemm?: string; values?: number[] };
    expect(result).toEqual({ gemm: 'wasm', values: [1, 2, 3, 4] });
  });
});
