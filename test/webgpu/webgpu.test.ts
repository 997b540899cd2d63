// The webgpu backend on whatever WebGPU adapter this machine has; in CI a software one (Mesa llvmpipe
// through Dawn's OpenGL ES path, installed by .ci/run). ~3-5 GFLOP/s there: the suite stays small.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendError, BindingLimitError, crossEntropyPerToken, geluNew, initBackend, webGpuAdapterInfo } from '@scaleot/backend';
import { loadModel } from '@scaleot/model';
import { createUniformEmulator, readAdapter, tuneAdapter } from '@scaleot/offsite';
import { modelDir, referenceRows } from '../../packages/model/test/fixtures.js';
import { familyDir, familyReference, rowDeviation, type FamilyModel } from '../../packages/model/test/familiesFixtures.js';

// HF transformers float32 reference: a correct float32 implementation lands within 1e-4.
const TOL = 1e-4;
const report: string[] = [];

process.env.SCALEOT_WEBGPU_SOFTWARE = '1';
const started = await initBackend('webgpu');
const adapter = webGpuAdapterInfo();
// Skips only when no WebGPU adapter exists at all (no Mesa EGL/GLES and no Vulkan driver): .ci/run
// installs them, so in CI this suite always runs.
const unavailable = started === 'webgpu' ? undefined : 'no WebGPU adapter on this machine (install Mesa: libegl-mesa0 libgles2 libgl1-mesa-dri)';
if (unavailable) console.warn(`webgpu suite skipped: ${unavailable}`);

async function onWebGpu(): Promise<void> {
  expect(await initBackend('webgpu')).toBe('webgpu');
  expect(tf.getBackend()).toBe('webgpu');
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.skipIf(unavailable !== undefined)(`webgpu backend on ${adapter?.device ?? 'no adapter'} (${adapter?.software ? 'software' : 'GPU'})`, () => {
  it('reports the adapter it runs on', () => {
    expect(adapter).toBeDefined();
    expect(adapter!.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(typeof adapter!.software).toBe('boolean');
  });

  it('geluNew and crossEntropyPerToken with their custom gradients match float64 on the host', async () => {
    await onWebGpu();
    const [n, v] = [24, 40];
    const xs = Array.from({ length: n * v }, (_, i) => Math.sin(i * 0.37) * 3);
    const targets = Array.from({ length: n }, (_, i) => (i * 7) % v);
    const x = tf.tensor2d(xs, [n, v]);
    const t = tf.tensor1d(targets, 'int32');
    const f = (z: tf.Tensor) => tf.sum(crossEntropyPerToken(geluNew(z), t));
    const { value, grad } = tf.valueAndGrad(f)(x);
    const got = { value: (await value.data())[0], grad: await grad.data() };
    tf.dispose([x, t, value, grad]);
    // float64 reference: gelu_new (tanh form), log-softmax NLL, and their analytic gradient.
    const c = Math.sqrt(2 / Math.PI);
    let total = 0;
    const want = new Float64Array(n * v);
    for (let r = 0; r < n; r++) {
      const g = xs.slice(r * v, (r + 1) * v).map((z) => 0.5 * z * (1 + Math.tanh(c * (z + 0.044715 * z ** 3))));
      const m = Math.max(...g);
      const lse = m + Math.log(g.reduce((s, y) => s + Math.exp(y - m), 0));
      total += lse - g[targets[r]];
      for (let j = 0; j < v; j++) {
        const z = xs[r * v + j];
        const u = c * (z + 0.044715 * z ** 3);
        const dg = 0.5 * (1 + Math.tanh(u)) + 0.5 * z * (1 - Math.tanh(u) ** 2) * c * (1 + 3 * 0.044715 * z * z);
        want[r * v + j] = (Math.exp(g[j] - lse) - (j === targets[r] ? 1 : 0)) * dg;
      }
    }
    report.push(`ops: |Δloss| ${Math.abs(got.value - total).toExponential(2)}, max|Δgrad| ${maxAbsDiff(got.grad, want).toExponential(2)}`);
    expect(Math.abs(got.value - total)).toBeLessThan(1e-4 * Math.abs(total));
    expect(maxAbsDiff(got.grad, want)).toBeLessThan(1e-5);
  });

  it('GPT-2 tiny reproduces the HF reference logits and NLL within 1e-4', { timeout: 300_000 }, async () => {
    await onWebGpu();
    const model = await loadModel(modelDir('tiny'));
    try {
      const dev = { logit: 0, nll: 0 };
      for (const row of referenceRows('tiny')) {
        const d = await rowDeviation(model, row);
        dev.logit = Math.max(dev.logit, d.logit);
        dev.nll = Math.max(dev.nll, d.nll);
      }
      report.push(`gpt2 tiny/webgpu: max|Δlogit| ${dev.logit.toExponential(2)}, max|Δnll| ${dev.nll.toExponential(2)}`);
      expect(dev.logit).toBeLessThan(TOL);
      expect(dev.nll).toBeLessThan(TOL);
    } finally {
      model.dispose();
    }
  });

  for (const name of ['opt', 'llama', 'llama3'] as FamilyModel[]) {
    it(`${name} family fixture reproduces the HF reference, plain and left-padded rows, within 1e-4`, { timeout: 300_000 }, async () => {
      await onWebGpu();
      const ref = familyReference(name);
      const model = await loadModel(familyDir(name));
      try {
        const dev = { logit: 0, nll: 0, rows: 0 };
        for (const row of [...ref.rows, ...ref.padded_rows]) {
          const d = await rowDeviation(model, row);
          dev.logit = Math.max(dev.logit, d.logit);
          dev.nll = Math.max(dev.nll, d.nll);
          dev.rows++;
        }
        report.push(`${name}/webgpu: ${dev.rows} rows, max|Δlogit| ${dev.logit.toExponential(2)}, max|Δnll| ${dev.nll.toExponential(2)}`);
        expect(dev.rows).toBeGreaterThan(ref.rows.length);
        expect(dev.logit).toBeLessThan(TOL);
        expect(dev.nll).toBeLessThan(TOL);
      } finally {
        model.dispose();
      }
    });
  }

  it('refuses a tensor over maxStorageBufferBindingSize with a typed error, allocating nothing', async () => {
    await onWebGpu();
    const limit = adapter!.maxStorageBufferBindingSize;
    const before = tf.memory().numTensors;
    let error: unknown;
    try {
      tf.fill([limit / 4 + 1], 1.5, 'float32');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BindingLimitError);
    expect(error).toMatchObject({ code: 'TENSOR_OVER_BINDING_LIMIT', where: 'webgpu', limit, bytes: limit + 4 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses int32 unsortedSegmentSum, sums float32 correctly', async () => {
    await onWebGpu();
    const ids = tf.tensor1d([0, 2, 0, 1, 2, 2], 'int32');
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [6, 2]);
    // Upload both first, so the op runs on the GPU rather than on tfjs's small-input CPU path.
    const xg = tf.mul(x, 1);
    const idsg = tf.add(ids, tf.scalar(0, 'int32')) as tf.Tensor1D;
    const sum = tf.unsortedSegmentSum(xg, idsg, 3);
    expect(Array.from(await sum.data())).toEqual([1 + 5, 2 + 6, 7, 8, 3 + 9 + 11, 4 + 10 + 12]);
    const xi = tf.cast(xg, 'int32');
    expect(() => tf.unsortedSegmentSum(xi, idsg, 3)).toThrow(BackendError);
    expect(() => tf.unsortedSegmentSum(xi, idsg, 3)).toThrow(/WEBGPU_INT32_SEGMENT_SUM|int32/);
    tf.dispose([ids, x, xg, idsg, sum, xi]);
  });

  it('a synchronous read of GPU data is a typed error, not a ReferenceError; host data still reads', async () => {
    await onWebGpu();
    const host = tf.tensor1d([1, 2, 3]);
    expect(Array.from(host.dataSync())).toEqual([1, 2, 3]);
    const onGpu = tf.mul(tf.fill([2000], 2), 3); // over tfjs's CPU hand-off size: computed on the GPU
    expect(() => onGpu.dataSync()).toThrow(expect.objectContaining({ code: 'WEBGPU_SYNC_READ' }));
    expect((await onGpu.data())[1999]).toBe(6);
    tf.dispose([host, onGpu]);
  });

  it('adds 40 tensors in one addN (past the storage-buffer slots of GLES drivers) exactly', async () => {
    await onWebGpu();
    const parts = Array.from({ length: 40 }, (_, i) => tf.mul(tf.fill([3, 5], i + 1), 1));
    const sum = tf.addN(parts);
    expect(Array.from(await sum.data())).toEqual(new Array(15).fill((40 * 41) / 2));
    tf.dispose([...parts, sum]);
  });

  it('tuning a GPT-2 emulator for 3 steps matches wasm: losses and adapter weights', { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scaleot-webgpu-'));
    try {
      await createUniformEmulator({ modelDir: modelDir('tiny'), outDir: join(dir, 'emu') });
      const hyper = { steps: 3, batchSize: 2, microBatchSize: 2, seqLen: 64, warmupSteps: 1, lr: 1e-3, seed: 3 };
      const run = async (backend: 'wasm' | 'webgpu') => {
        expect(await initBackend(backend)).toBe(backend);
        const r = await tuneAdapter({ emulatorDir: join(dir, 'emu'), task: 'moby', dataRoot: join(process.cwd(), 'data'), outDir: join(dir, backend), hyper });
        return { losses: r.train.losses, weights: (await readAdapter(join(dir, backend))).tensors };
      };
      const wasm = await run('wasm');
      const gpu = await run('webgpu');
      expect(gpu.losses).toHaveLength(3);
      const lossDiff = maxAbsDiff(gpu.losses, wasm.losses);
      // Adam divides by √v: where a gradient is ~0, float noise can move a weight by up to lr per step.
      let maxW = 0;
      let sumW = 0;
      let count = 0;
      for (const [name, w] of wasm.weights) {
        const g = gpu.weights.get(name);
        expect(g, name).toBeDefined();
        for (let i = 0; i < w.data.length; i++) {
          const d = Math.abs(w.data[i] - g!.data[i]);
          maxW = Math.max(maxW, d);
          sumW += d;
          count++;
        }
      }
      report.push(`tune 3 steps webgpu vs wasm: max|Δloss| ${lossDiff.toExponential(2)}, weights max|Δ| ${maxW.toExponential(2)}, mean|Δ| ${(sumW / count).toExponential(2)} over ${count}`);
      expect(count).toBeGreaterThan(0);
      expect(lossDiff).toBeLessThan(1e-4);
      expect(maxW).toBeLessThan(3 * 2 * hyper.lr);
      expect(sumW / count).toBeLessThan(1e-6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

afterAll(() => {
  if (report.length > 0) console.log(report.join('\n'));
});
