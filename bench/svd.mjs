// Our float64 SVD (the one Selective Rank Compression uses) vs NumPy's LAPACK SVD on the same
// matrices: time, singular-value agreement, and the Eckart–Young check at SRC's β = 0.5 rank.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { emitJson, fmt, importPackage, log, median, mulberry32, repoRoot, table } from './lib/common.mjs';
import { ensurePythonPeer, runPythonScript } from './lib/python.mjs';

export const description =
  'SVD for Selective Rank Compression: ours (float64 JS, 1 thread) vs NumPy/LAPACK on GPT-2 attention shapes';

export const options = {
  shapes: { type: 'string', default: '768x2304,1024x3072', help: 'comma-separated MxN (GPT-2 small / medium c_attn)' },
  repeats: { type: 'number', default: 3, help: 'timed decompositions per side (median reported)' },
  'blas-threads': { type: 'number', default: 1, help: 'OpenBLAS threads of the NumPy peer (ours is single-threaded)' },
  numpy: { type: 'boolean', default: true, help: 'run the NumPy peer (--no-numpy to skip)' },
  install: { type: 'boolean', default: true, help: 'apt-get install python3-numpy + OpenBLAS when missing' },
  seed: { type: 'number', default: 7, help: 'seed of the Gaussian test matrices' },
};

const EY_TOLERANCE = 1e-4;

function gaussianFloat32(m, n, seed) {
  const next = mulberry32(seed);
  const uniform = () => (next() + 0.5) / 2 ** 32;
  const a = new Float32Array(m * n);
  for (let i = 0; i < a.length; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    a[i] = radius * Math.cos(angle);
    if (i + 1 < a.length) a[i + 1] = radius * Math.sin(angle);
  }
  return a;
}

/** ‖A − A_r‖_F for A_r = lowRankApproximation(A, r). */
function truncationError(lowRankApproximation, a, m, n, rank) {
  const approx = lowRankApproximation(a, m, n, rank);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - approx[i]) ** 2;
  return Math.sqrt(sum);
}

export async function main(opts) {
  const { svd, lowRankApproximation } = await importPackage('@scaleot/scaleot', ['svd', 'lowRankApproximation']);
  const shapes = opts.shapes.split(',').map((text) => {
    const match = /^(\d+)x(\d+)$/.exec(text.trim());
    if (!match) throw new Error(`--shapes: "${text}" is not MxN`);
    return [Number(match[1]), Number(match[2])];
  });
  const errors = {};
  let peer = null;
  if (opts.numpy) {
    peer = await ensurePythonPeer({ label: 'NumPy peer', packages: ['python3-numpy', 'libopenblas0-pthread'], probe: 'import numpy; print(numpy.__version__)', install: opts.install });
    if (!peer.available) {
      errors.numpy = `NumPy unavailable: ${peer.reason}`;
      log(errors.numpy);
    }
  }
  const scratch = mkdtempSync(path.join(tmpdir(), 'scaleot-svd-bench-'));
  const rows = [];
  try {
    for (const [index, [m, n]] of shapes.entries()) {
      const a = gaussianFloat32(m, n, opts.seed + index);
      const k = Math.min(m, n);
      const rank = Math.round(0.5 * k);
      log(`${m}×${n}: ours, ${opts.repeats} full decompositions`);
      const times = [];
      let ours = null;
      for (let r = 0; r < opts.repeats; r++) {
        const started = performance.now();
        ours = svd(a, m, n);
        times.push((performance.now() - started) / 1000);
      }
      const started = performance.now();
      svd(a, m, n, { rank });
      const truncatedS = (performance.now() - started) / 1000;
      const tail = Math.sqrt(ours.s.slice(rank).reduce((sum, x) => sum + x * x, 0));
      const eyRelative = Math.abs(truncationError(lowRankApproximation, a, m, n, rank) - tail) / tail;
      const row = {
        shape: `${m}x${n}`, rank_at_beta_half: rank, ours_s: median(times), ours_times_s: times, ours_truncated_s: truncatedS,
        eckart_young_rel_err: eyRelative, numpy_s: null, ratio: null, singular_values_max_rel_diff: null,
      };
      if (peer?.available) {
        const file = path.join(scratch, `a-${m}x${n}.f32`);
        writeFileSync(file, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
        log(`${m}×${n}: NumPy (OpenBLAS ${opts['blas-threads']} thread(s)), ${opts.repeats} decompositions`);
        try {
          const threads = String(opts['blas-threads']);
          const reference = await runPythonScript(
            path.join(repoRoot, 'tools', 'reference', 'svd_reference.py'),
            ['--matrix', file, '--m', String(m), '--n', String(n), '--repeats', String(opts.repeats)],
            { OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads },
          );
          row.numpy_s = reference.median_s;
          row.numpy_times_s = reference.times_s;
          row.ratio = row.ours_s / reference.median_s;
          row.singular_values_max_rel_diff = Math.max(...reference.s.map((s, i) => Math.abs(s - ours.s[i]) / reference.s[0]));
        } catch (error) {
          errors[`numpy_${m}x${n}`] = error.message;
        }
      }
      rows.push(row);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const out = [];
  out.push(`SVD, Gaussian float32 matrices decomposed in float64, median of ${opts.repeats}; NumPy ${peer?.version ?? 'n/a'} with OpenBLAS ${opts['blas-threads']} thread(s), ours 1 thread`);
  out.push(table(['shape', 'ours full s', 'ours rank-k/2 s', 'NumPy s', 'ours / NumPy', 'max |Δσ|/σ₁', `Eckart–Young rel err (tol ${EY_TOLERANCE})`],
    rows.map((r) => [r.shape, fmt(r.ours_s, 2), fmt(r.ours_truncated_s, 2), fmt(r.numpy_s, 2), fmt(r.ratio, 2), fmt(r.singular_values_max_rel_diff, 2), fmt(r.eckart_young_rel_err, 2)])));
  for (const [key, message] of Object.entries(errors)) out.push(`${key}: ${message}`);
  process.stdout.write(`${out.join('\n')}\n`);
  emitJson(opts.json, { rows, numpy_version: peer?.version ?? null, blas: peer?.blas ?? null, blas_threads: opts['blas-threads'], errors });
  const accurate = rows.every((r) => r.eckart_young_rel_err <= EY_TOLERANCE && (r.singular_values_max_rel_diff ?? 0) <= 1e-9);
  return Object.keys(errors).length || !accurate ? 1 : 0;
}
