import { ScaleotMethodError } from './ScaleotMethodError.js';

/**
 * Singular value decomposition of a dense row-major matrix, in float64.
 *
 * Method: eigen-decomposition of the Gram matrix of the short side (`A·Aᵀ` when m ≤ n) by Householder
 * tridiagonalisation + implicit QL (the EISPACK tred2/tql2 pair), then the long-side vectors from one
 * more product, `Σ·Vᵀ = Uᵀ·A`, whose row norms give the singular values. Cost ≈ 2·m²·n + 9·m³ flops for
 * m ≤ n, against ~4·m·n² + 8·n³ for Golub–Kahan. Squaring the matrix costs accuracy only on singular values
 * below ~1e-8·σ_max (float64), far under what truncating float32 weights can notice; the storage is
 * transposed against the textbook so that every inner loop walks contiguous memory.
 */

export interface SvdResult {
  /** Rows and columns of the decomposed matrix. */
  m: number;
  n: number;
  /** Singular triplets returned: min(m, n), or the requested rank. */
  k: number;
  /** [m, k] row-major; orthonormal columns. */
  u: Float64Array;
  /** [k], descending, ≥ 0. */
  s: Float64Array;
  /** [n, k] row-major; orthonormal columns. A ≈ U·diag(s)·Vᵀ. */
  v: Float64Array;
}

export interface SvdOptions {
  /** Return only the leading `rank` triplets (cheaper: the last product scales with it). Default: min(m, n). */
  rank?: number;
}

/** Full or truncated SVD of `a` ([m, n], row-major, any numeric array). */
export function svd(a: ArrayLike<number>, m: number, n: number, opts: SvdOptions = {}): SvdResult {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 1 || n < 1 || a.length !== m * n) {
    throw new ScaleotMethodError('BAD_MATRIX', `svd needs a row-major [m, n] matrix with m, n ≥ 1 and m·n values; got m=${m}, n=${n}, ${a.length} values`, { where: 'svd' });
  }
  const full = Math.min(m, n);
  const k = opts.rank ?? full;
  if (!Number.isInteger(k) || k < 1 || k > full) {
    throw new ScaleotMethodError('BAD_RANK', `rank must be an integer in [1, ${full}], got ${k}`, { where: 'svd' });
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new ScaleotMethodError('BAD_MATRIX', `the matrix holds a non-finite value at index ${i}`, { where: 'svd' });
  }
  if (m <= n) return svdWide(Float64Array.from(a), m, n, k);
  // A = U Σ Vᵀ ⇔ Aᵀ = V Σ Uᵀ: decompose the wide transpose and swap the sides.
  const t = transpose(a, m, n);
  const r = svdWide(t, n, m, k);
  return { m, n, k, u: r.v, s: r.s, v: r.u };
}

/** Truncated SVD as two factors: `left = U_r·diag(s_r)` [m, r], `right = V_rᵀ` [r, n] (float32), so A_r = left·right. */
export function lowRankFactors(a: ArrayLike<number>, m: number, n: number, rank: number): { left: Float32Array; right: Float32Array; s: Float64Array } {
  const r = svd(a, m, n, { rank });
  const left = new Float32Array(m * rank);
  const right = new Float32Array(rank * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < rank; j++) left[i * rank + j] = r.u[i * rank + j] * r.s[j];
  for (let j = 0; j < rank; j++) for (let c = 0; c < n; c++) right[j * n + c] = r.v[c * rank + j];
  return { left, right, s: r.s };
}

/** The best rank-`rank` approximation of `a` in Frobenius norm (Eckart–Young), dense [m, n] float64. */
export function lowRankApproximation(a: ArrayLike<number>, m: number, n: number, rank: number): Float64Array {
  const r = svd(a, m, n, { rank });
  return reconstruct(r);
}

/** U·diag(s)·Vᵀ of an SvdResult, [m, n] float64. */
export function reconstruct(r: SvdResult): Float64Array {
  const { m, n, k } = r;
  // (U·diag(s)) · Vᵀ as row-by-row dot products against the rows of V.
  const us = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = r.u[i * k + j] * r.s[j];
  const out = new Float64Array(m * n);
  gemmNT(us, m, r.v, n, k, out);
  return out;
}

/** Multiplies two float32 factors back into a dense float32 matrix (left [m, r] · right [r, n]). */
export function multiplyFactors(left: Float32Array, right: Float32Array, m: number, r: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let j = 0; j < r; j++) {
      const l = left[i * r + j];
      if (l === 0) continue;
      const row = j * n;
      for (let c = 0; c < n; c++) acc[c] += l * right[row + c];
    }
    for (let c = 0; c < n; c++) out[i * n + c] = acc[c];
  }
  return out;
}

function svdWide(a: Float64Array, m: number, n: number, k: number): SvdResult {
  const gram = new Float64Array(m * m);
  gemmNT(a, m, a, m, n, gram, true);
  const { vectors } = symmetricEigen(gram, m);
  // Eigenvalues come ascending: the leading singular triplets are the last rows of `vectors`.
  const uRows = new Float64Array(k * m);
  for (let i = 0; i < k; i++) uRows.set(vectors.subarray((m - 1 - i) * m, (m - i) * m), i * m);
  // Σ·Vᵀ = Uᵀ·A: row i is σ_i·v_iᵀ. As dot products of U's rows with Aᵀ's rows (contiguous).
  const at = transpose(a, m, n);
  const sv = new Float64Array(k * n);
  gemmNT(uRows, k, at, n, m, sv);
  const s = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += sv[i * n + j] * sv[i * n + j];
    s[i] = Math.sqrt(sum);
  }
  // Row norms reorder near-ties that the eigenvalues ranked in the other order.
  const order = Array.from({ length: k }, (_, i) => i).sort((x, y) => s[y] - s[x] || x - y);
  const sSorted = new Float64Array(k);
  const u = new Float64Array(m * k);
  const vRows = new Float64Array(k * n);
  const tiny = (s[order[0]] || 0) * Math.max(m, n) * 1e-13;
  order.forEach((src, dst) => {
    sSorted[dst] = s[src];
    for (let r = 0; r < m; r++) u[r * k + dst] = uRows[src * m + r];
    const row = vRows.subarray(dst * n, (dst + 1) * n);
    if (s[src] > tiny) {
      const inv = 1 / s[src];
      for (let j = 0; j < n; j++) row[j] = sv[src * n + j] * inv;
    } else {
      // A (numerically) zero singular value leaves v undetermined: any unit vector orthogonal to the others.
      completeOrthonormal(vRows, dst, n);
    }
  });
  const v = transpose(vRows, k, n);
  return { m, n, k, u, s: sSorted, v };
}

/** Fills row `i` of `rows` ([*, n]) with a unit vector orthogonal to rows 0…i−1 (Gram–Schmidt on e_j). */
function completeOrthonormal(rows: Float64Array, i: number, n: number): void {
  const row = rows.subarray(i * n, (i + 1) * n);
  for (let candidate = 0; candidate < n; candidate++) {
    row.fill(0);
    row[candidate] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < i; p++) {
        const other = rows.subarray(p * n, (p + 1) * n);
        let dot = 0;
        for (let j = 0; j < n; j++) dot += other[j] * row[j];
        for (let j = 0; j < n; j++) row[j] -= dot * other[j];
      }
    }
    let norm = 0;
    for (let j = 0; j < n; j++) norm += row[j] * row[j];
    norm = Math.sqrt(norm);
    if (norm > 0.5) {
      for (let j = 0; j < n; j++) row[j] /= norm;
      return;
    }
  }
}

/** out[i, j] = Σ_t x[i, t]·y[j, t] for x [p, q], y [r, q] (row-major). `symmetric`: x = y, fill both halves from one. */
export function gemmNT(x: Float64Array, p: number, y: Float64Array, r: number, q: number, out: Float64Array, symmetric = false): void {
  // 2×2 register blocks: four running sums per pass over q, two loads from each operand.
  for (let i = 0; i < p; i += 2) {
    const i1 = Math.min(i + 1, p - 1);
    const xa = i * q;
    const xb = i1 * q;
    const jEnd = symmetric ? i1 + 1 : r;
    for (let j = 0; j < jEnd; j += 2) {
      const j1 = Math.min(j + 1, r - 1);
      const ya = j * q;
      const yb = j1 * q;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let t = 0; t < q; t++) {
        const x0 = x[xa + t];
        const x1 = x[xb + t];
        const y0 = y[ya + t];
        const y1 = y[yb + t];
        s00 += x0 * y0;
        s01 += x0 * y1;
        s10 += x1 * y0;
        s11 += x1 * y1;
      }
      out[i * r + j] = s00;
      if (j1 !== j) out[i * r + j1] = s01;
      if (i1 !== i) {
        out[i1 * r + j] = s10;
        if (j1 !== j) out[i1 * r + j1] = s11;
      }
    }
  }
  if (symmetric) {
    for (let i = 0; i < p; i++) for (let j = i + 1; j < r; j++) out[i * r + j] = out[j * r + i];
  }
}

function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  const B = 32;
  for (let i0 = 0; i0 < m; i0 += B) {
    for (let j0 = 0; j0 < n; j0 += B) {
      const iEnd = Math.min(i0 + B, m);
      const jEnd = Math.min(j0 + B, n);
      for (let i = i0; i < iEnd; i++) for (let j = j0; j < jEnd; j++) t[j * m + i] = a[i * n + j];
    }
  }
  return t;
}

/**
 * Eigen-decomposition of a symmetric [n, n] matrix (row-major; consumed). Returns eigenvalues ascending
 * and the eigenvectors as the ROWS of `vectors` (row i belongs to values[i]).
 *
 * JAMA's tred2 + tql2 with the working matrix stored transposed (w[x·n + y] = V[y][x]): every inner loop
 * of both routines then runs along a row, which is what makes 1024×1024 take seconds, not minutes.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const w = matrix;
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(w, d, e, n);
  tql2(w, d, e, n);
  return { values: d, vectors: w };
}

function tred2(w: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = w[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = w[j * n + i - 1];
        w[j * n + i] = 0;
        w[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        w[i * n + j] = f;
        const row = j * n;
        g = e[j] + w[row + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const wk = w[row + k];
          g += wk * d[k];
          e[k] += wk * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        const row = j * n;
        for (let k = j; k <= i - 1; k++) w[row + k] -= f * e[k] + g * d[k];
        d[j] = w[row + i - 1];
        w[row + i] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    w[i * n + n - 1] = w[i * n + i];
    w[i * n + i] = 1;
    const h = d[i + 1];
    const next = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = w[next + k] / h;
      for (let j = 0; j <= i; j++) {
        const row = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += w[next + k] * w[row + k];
        for (let k = 0; k <= i; k++) w[row + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) w[next + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = w[j * n + n - 1];
    w[j * n + n - 1] = 0;
  }
  w[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

function tql2(w: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new ScaleotMethodError('SVD_NO_CONVERGENCE', `the symmetric QL iteration did not converge for eigenvalue ${l} of ${n}`, { where: 'svd' });
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.sqrt(p * p + e[i] * e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          // Columns i, i+1 of V are rows i, i+1 here.
          const ri = i * n;
          const ri1 = ri + n;
          for (let k = 0; k < n; k++) {
            const hk = w[ri1 + k];
            const vk = w[ri + k];
            w[ri1 + k] = s * vk + c * hk;
            w[ri + k] = c * vk - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  // Sort ascending, moving the vector rows along.
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i];
    for (let j = i + 1; j < n; j++) {
      if (d[j] < p) {
        k = j;
        p = d[j];
      }
    }
    if (k !== i) {
      d[k] = d[i];
      d[i] = p;
      const a = i * n;
      const b = k * n;
      for (let j = 0; j < n; j++) {
        const tmp = w[a + j];
        w[a + j] = w[b + j];
        w[b + j] = tmp;
      }
    }
  }
}
