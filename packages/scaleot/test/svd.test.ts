import { describe, expect, it } from 'vitest';
import { lowRankApproximation, lowRankFactors, multiplyFactors, reconstruct, ScaleotMethodError, svd } from '@scaleot/scaleot';
import { gaussianMatrix, mulberry32, orthonormalColumns } from './helpers.js';

/** max |QᵀQ − I| over the k columns of a row-major [rows, k] matrix. */
function orthonormalityError(q: Float64Array, rows: number, k: number): number {
  let worst = 0;
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += q[i * k + a] * q[i * k + b];
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

function frobeniusDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** A = Q1·diag(sigma)·Q2ᵀ with known singular values (float64 reference construction). */
function planted(m: number, n: number, sigma: number[], seed: number): Float64Array {
  const k = sigma.length;
  const q1 = orthonormalColumns(m, k, seed);
  const q2 = orthonormalColumns(n, k, seed + 1);
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += q1[i * k + t] * sigma[t] * q2[j * k + t];
    a[i * n + j] = s;
  }
  return a;
}

describe('svd (Gram eigen-decomposition, float64)', () => {
  it('recovers planted singular values; truncation error is the discarded σ (Eckart–Young) on wide and tall matrices', () => {
    for (const [m, n, seed] of [
      [40, 120, 1],
      [150, 60, 2],
    ] as const) {
      const k = Math.min(m, n);
      const r = mulberry32(seed);
      const sigma = Array.from({ length: k }, (_, i) => 10 * Math.exp(-i / 15) + 0.01 * r()).sort((x, y) => y - x);
      const a = planted(m, n, sigma, seed * 10);
      const res = svd(a, m, n);
      expect(res.k).toBe(k);
      for (let i = 0; i < k; i++) expect(Math.abs(res.s[i] - sigma[i])).toBeLessThan(1e-9 * sigma[0]);
      expect(orthonormalityError(res.u, m, k)).toBeLessThan(1e-10);
      expect(orthonormalityError(res.v, n, k)).toBeLessThan(1e-8);
      expect(frobeniusDiff(reconstruct(res), a)).toBeLessThan(1e-10 * sigma[0]);
      for (const rank of [1, 5, Math.floor(k / 2), k - 1]) {
        const err = frobeniusDiff(lowRankApproximation(a, m, n, rank), a);
        const discarded = Math.sqrt(sigma.slice(rank).reduce((s, x) => s + x * x, 0));
        expect(Math.abs(err - discarded) / discarded).toBeLessThan(1e-4);
      }
    }
  });

  it('handles a rank-deficient matrix: zero singular values, still orthonormal V', () => {
    const a = planted(30, 50, [5, 3, 1], 7);
    const res = svd(a, 30, 50);
    expect(res.s[0]).toBeCloseTo(5, 10);
    expect(res.s[2]).toBeCloseTo(1, 10);
    expect(res.s[3]).toBeLessThan(1e-6);
    expect(orthonormalityError(res.u, 30, 30)).toBeLessThan(1e-10);
    expect(orthonormalityError(res.v, 50, 30)).toBeLessThan(1e-10);
    expect(frobeniusDiff(reconstruct(res), a)).toBeLessThan(1e-10);
  });

  it('factors multiply back to the truncated product ([in, r]·[r, out] layout)', () => {
    const m = 24;
    const n = 72;
    const a = gaussianMatrix(m, n, 3);
    const { left, right } = lowRankFactors(a, m, n, 10);
    const dense = lowRankApproximation(a, m, n, 10);
    const product = multiplyFactors(left, right, m, 10, n);
    expect(frobeniusDiff(product, dense) / frobeniusDiff(dense, new Float64Array(dense.length))).toBeLessThan(1e-6);
  });

  it('rejects bad shapes, ranks and non-finite values with typed errors', () => {
    expect(() => svd(new Float64Array(6), 2, 4)).toThrow(ScaleotMethodError);
    expect(() => svd(new Float64Array(8), 2, 4, { rank: 3 })).toThrow(expect.objectContaining({ code: 'BAD_RANK' }));
    expect(() => svd(Float64Array.from([1, NaN, 0, 1]), 2, 2)).toThrow(expect.objectContaining({ code: 'BAD_MATRIX' }));
  });

  it('1024×3072 float32 (GPT-2 medium c_attn size): Eckart–Young within 1e-4, orthonormal factors', () => {
    const m = 1024;
    const n = 3072;
    const a = Float32Array.from(gaussianMatrix(m, n, 11));
    const t0 = performance.now();
    const res = svd(a, m, n);
    const seconds = (performance.now() - t0) / 1000;
    console.log(`svd 1024×3072: ${seconds.toFixed(1)} s`);
    const total = a.reduce((s, x) => s + x * x, 0);
    for (const rank of [128, 768]) {
      // ‖A − U_rU_rᵀA‖² = ‖A‖² − Σ_{i<r} σ_i² only if the factors are right; compare with the discarded tail.
      const us = new Float64Array(m * rank);
      for (let i = 0; i < m; i++) for (let j = 0; j < rank; j++) us[i * rank + j] = res.u[i * res.k + j] * res.s[j];
      const vr = new Float64Array(n * rank);
      for (let i = 0; i < n; i++) for (let j = 0; j < rank; j++) vr[i * rank + j] = res.v[i * res.k + j];
      const approx = reconstruct({ m, n, k: rank, u: us, s: new Float64Array(rank).fill(1), v: vr });
      const err = frobeniusDiff(approx, a);
      let tail = 0;
      for (let i = rank; i < res.k; i++) tail += res.s[i] ** 2;
      expect(Math.abs(err - Math.sqrt(tail)) / Math.sqrt(tail)).toBeLessThan(1e-4);
    }
    let sumSq = 0;
    for (const s of res.s) sumSq += s * s;
    expect(Math.abs(sumSq - total) / total).toBeLessThan(1e-9);
    // Spot-check orthonormality on a slice of columns (the full check is O(k²·n)).
    const cols = 64;
    const uSlice = new Float64Array(m * cols);
    const vSlice = new Float64Array(n * cols);
    for (let i = 0; i < m; i++) for (let j = 0; j < cols; j++) uSlice[i * cols + j] = res.u[i * res.k + j * 16];
    for (let i = 0; i < n; i++) for (let j = 0; j < cols; j++) vSlice[i * cols + j] = res.v[i * res.k + j * 16];
    expect(orthonormalityError(uSlice, m, cols)).toBeLessThan(1e-10);
    expect(orthonormalityError(vSlice, n, cols)).toBeLessThan(1e-10);
  }, 600_000);
});
