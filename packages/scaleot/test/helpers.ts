import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, gpt2Config, type CausalLM, type Gpt2Config } from '@scaleot/model';
import { gaussian, mulberry32 } from '../../../test/support/numeric.js';

export { gaussian, mulberry32 };

export function gaussianMatrix(m: number, n: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(m * n);
  for (let i = 0; i < out.length; i++) out[i] = gaussian(r);
  return out;
}

/** [rows, k] row-major with orthonormal columns (modified Gram–Schmidt, two passes). */
export function orthonormalColumns(rows: number, k: number, seed: number): Float64Array {
  const g = gaussianMatrix(k, rows, seed); // row j = column j
  for (let j = 0; j < k; j++) {
    const v = g.subarray(j * rows, (j + 1) * rows);
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        const u = g.subarray(p * rows, (p + 1) * rows);
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += u[i] * v[i];
        for (let i = 0; i < rows; i++) v[i] -= dot * u[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) v[i] /= norm;
  }
  const out = new Float64Array(rows * k);
  for (let j = 0; j < k; j++) for (let i = 0; i < rows; i++) out[i * k + j] = g[j * rows + i];
  return out;
}

export const microConfig = (nLayer = 6): Gpt2Config => gpt2Config({ vocabSize: 48, nPositions: 16, nEmbd: 16, nLayer, nHead: 2 });

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `scaleot-${label}-`));
}

/**
 * A small model with O(1) activations (weights std `scale`, LN gains near 1, non-zero biases), with
 * per-name overrides of the std.
 */
export function randomModel(config: Gpt2Config, seed: number, scale = 0.3, stdFor: (name: string) => number | undefined = () => undefined): CausalLM {
  const shapes = createModel(config, undefined, { seed });
  const r = mulberry32(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, v] of shapes.namedWeights()) {
    const data = new Float32Array(v.size);
    const isGain = /ln_\d\.weight$|ln_f\.weight$/.test(name);
    const std = stdFor(name) ?? (isGain ? 0.2 : v.rank === 1 ? 0.1 : scale);
    for (let i = 0; i < data.length; i++) data[i] = (isGain ? 1 : 0) + gaussian(r) * std;
    weights.set(name, data);
  }
  shapes.dispose();
  return createModel(config, weights);
}

/** Saves a random micro model as an HF dir and returns its path. */
export async function savedRandomModel(label: string, seed: number, nLayer = 6, stdFor?: (name: string) => number | undefined): Promise<string> {
  const dir = join(tempDir(label), 'model');
  const model = randomModel(microConfig(nLayer), seed, 0.3, stdFor);
  await model.save(dir);
  model.dispose();
  return dir;
}

export function randomStream(length: number, vocab: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length }, () => Math.floor(r() * vocab));
}
