import { describe, expect, it } from 'vitest';
import { loadNativeGemm, nativeGemmDisabled, type NativeGemm } from '@scaleot/blas';

function gemm(): NativeGemm {
  const load = loadNativeGemm({});
  if (!load.ok) throw new Error(`the OpenBLAS addon is not available (${load.code}): ${load.reason}`);
  return load.gemm;
}

function random(n: number, seed: number): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = s / 1073741824 - 1;
  }
  return out;
}

/** float64 op(A) op(B) for one row-major slice pair. */
function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[ta ? p * m + i : i * k + p] * b[tb ? j * k + p : p * n + j];
      c[i * n + j] = sum;
    }
  }
  return c;
}

describe('sgemmBatched on an ArrayBuffer', () => {
  it('computes batched, transposed and index-mapped products in place (1e-5 relative to the output scale)', () => {
    const g = gemm();
    const [m, n, k] = [7, 5, 9];
    const aSlices = 2;
    const bSlices = 3;
    const aIndex = new Int32Array([1, 0, 1]);
    const bIndex = new Int32Array([2, 2, 0]);
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      // Operands at odd (4-byte aligned) offsets inside one buffer, like tensors on the wasm heap.
      const heap = new ArrayBuffer(4 * (3 + aSlices * m * k + bSlices * k * n + 3 * m * n) + 12);
      const aOff = 12;
      const bOff = aOff + 4 * aSlices * m * k;
      const cOff = bOff + 4 * bSlices * k * n + 4;
      const a = random(aSlices * m * k, 1);
      const b = random(bSlices * k * n, 2);
      new Float32Array(heap, aOff, a.length).set(a);
      new Float32Array(heap, bOff, b.length).set(b);
      g.sgemmBatched(heap, ta, tb, m, n, k, aOff, bOff, cOff, 3, aIndex, bIndex);
      const c = new Float32Array(heap, cOff, 3 * m * n);
      for (let i = 0; i < 3; i++) {
        const expected = reference(a.subarray(aIndex[i] * m * k, (aIndex[i] + 1) * m * k), b.subarray(bIndex[i] * k * n, (bIndex[i] + 1) * k * n), m, n, k, ta, tb);
        for (let j = 0; j < m * n; j++) expect(Math.abs(c[i * m * n + j] - expected[j])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[j])));
      }
    }
  });

  it('folds a shared right operand into the rows and gives the per-slice result', () => {
    const g = gemm();
    const [batch, m, n, k] = [4, 3, 6, 5];
    const heap = new ArrayBuffer(4 * (batch * m * k + k * n + batch * m * n));
    const a = random(batch * m * k, 3);
    const b = random(k * n, 4);
    new Float32Array(heap, 0, a.length).set(a);
    new Float32Array(heap, 4 * a.length, b.length).set(b);
    const cOff = 4 * (a.length + b.length);
    g.sgemmBatched(heap, false, false, m, n, k, 0, 4 * a.length, cOff, batch, null, new Int32Array(batch));
    const c = new Float32Array(heap, cOff, batch * m * n);
    for (let i = 0; i < batch; i++) {
      const expected = reference(a.subarray(i * m * k, (i + 1) * m * k), b, m, n, k, false, false);
      for (let j = 0; j < m * n; j++) expect(Math.abs(c[i * m * n + j] - expected[j])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[j])));
    }
  });

  it('refuses operands outside the buffer, misaligned offsets and bad arguments', () => {
    const g = gemm();
    const heap = new ArrayBuffer(4 * 16);
    expect(() => g.sgemmBatched(heap, false, false, 2, 2, 2, 0, 16, 48, 2, null, null)).toThrow(RangeError);
    expect(() => g.sgemmBatched(heap, false, false, 2, 2, 2, 0, 16, 48, 1, null, new Int32Array([3]))).toThrow(/past the end/);
    expect(() => g.sgemmBatched(heap, false, false, 2, 2, 2, 2, 16, 32, 1, null, null)).toThrow(/aligned/);
    expect(() => g.sgemmBatched(heap, false, false, 2, 2, 2, 0, 16, 32, 2, new Int32Array([0]), null)).toThrow(/index length/);
    expect(() => g.sgemmBatched(heap, false, false, -1, 2, 2, 0, 16, 32, 1, null, null)).toThrow(TypeError);
    expect(() => g.sgemmBatched(new Float32Array(16) as unknown as ArrayBuffer, false, false, 2, 2, 2, 0, 16, 32, 1, null, null)).toThrow(/ArrayBuffer/);
    // In bounds: fine.
    g.sgemmBatched(heap, false, false, 2, 2, 2, 0, 16, 32, 1, null, null);
  });

  it('sgemmCausal: block-causal products equal the reference where the mask keeps them, and refuses bad operands', () => {
    const g = gemm();
    const [batch, t, d, block] = [2, 7, 3, 3]; // ragged blocks: 3, 3, 1
    const tt = t * t;
    const td = t * d;
    const x = random(batch * td, 5);
    const y = random(batch * td, 6);
    const l = random(batch * tt, 7);
    for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) l[b * tt + i * t + j] = 0;
    const heap = new ArrayBuffer(4 * (2 * batch * td + batch * tt + batch * tt));
    const xOff = 0;
    const yOff = 4 * batch * td;
    const lOff = 8 * batch * td;
    const cOff = lOff + 4 * batch * tt;
    new Float32Array(heap, xOff, x.length).set(x);
    new Float32Array(heap, yOff, y.length).set(y);
    new Float32Array(heap, lOff, l.length).set(l);
    const close = (actual: number, expected: number) => expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected)));
    for (const mode of [0, 1, 2] as const) {
      new Float32Array(heap, cOff, batch * tt).fill(Number.NaN); // the kernel must write every element
      g.sgemmCausal(heap, mode, batch, t, d, block, mode === 0 ? xOff : lOff, yOff, cOff);
      for (let b = 0; b < batch; b++) {
        const xb = x.subarray(b * td, (b + 1) * td);
        const yb = y.subarray(b * td, (b + 1) * td);
        const lb = l.subarray(b * tt, (b + 1) * tt);
        if (mode === 0) {
          const c = new Float32Array(heap, cOff + 4 * b * tt, tt);
          const full = reference(xb, yb, t, t, d, false, true);
          for (let i = 0; i < t; i++) {
            const visible = Math.min(t, (Math.floor(i / block) + 1) * block);
            for (let j = 0; j < t; j++) close(c[i * t + j], j < visible ? full[i * t + j] : 0);
          }
        } else {
          const c = new Float32Array(heap, cOff + 4 * b * td, td);
          const expected = reference(lb, yb, t, d, t, mode === 2, false);
          for (let i = 0; i < td; i++) close(c[i], expected[i]);
        }
      }
    }
    expect(() => g.sgemmCausal(heap, 3 as 0, batch, t, d, block, lOff, yOff, cOff)).toThrow(/mode/);
    expect(() => g.sgemmCausal(heap, 1, batch, t, d, 0, lOff, yOff, cOff)).toThrow(/block/);
    expect(() => g.sgemmCausal(heap, 1, batch + 9, t, d, block, lOff, yOff, cOff)).toThrow(/past the end/);
  });

  it('sets OpenBLAS threads and reports its configuration', () => {
    const g = gemm();
    const before = g.getThreads();
    g.setThreads(1);
    expect(g.getThreads()).toBe(1);
    g.setThreads(before);
    expect(g.config()).toMatch(/OpenBLAS/);
    expect(() => g.setThreads(0)).toThrow(TypeError);
  });

  it('SCALEOT_NATIVE_GEMM=0 (or false/off/no) turns it off', () => {
    for (const value of ['0', 'false', 'OFF', 'no']) {
      expect(nativeGemmDisabled({ SCALEOT_NATIVE_GEMM: value })).toBe(true);
      expect(loadNativeGemm({ SCALEOT_NATIVE_GEMM: value })).toMatchObject({ ok: false, code: 'DISABLED' });
    }
    expect(nativeGemmDisabled({ SCALEOT_NATIVE_GEMM: '1' })).toBe(false);
    expect(nativeGemmDisabled({})).toBe(false);
  });
});
