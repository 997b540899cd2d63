import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { mulberry32 } from '../../../test/support/numeric.js';

type Numeric = ArrayLike<number> | tf.Tensor;

function values(x: Numeric): ArrayLike<number> {
  return x instanceof tf.Tensor ? x.dataSync() : x;
}

/**
 * Elementwise |actual - expected| <= atol + rtol * |expected|, with the first offending index in
 * the failure message. NaN only matches NaN.
 */
export function expectArraysClose(actual: Numeric, expected: Numeric, atol = 1e-6, rtol = 1e-5): void {
  const a = values(actual);
  const e = values(expected);
  expect(a.length, 'length').toBe(e.length);
  let worst = -1;
  let worstExcess = 0;
  let failures = 0;
  for (let i = 0; i < e.length; i++) {
    const diff = Math.abs(a[i] - e[i]);
    const bound = atol + rtol * Math.abs(e[i]);
    const bothNaN = Number.isNaN(a[i]) && Number.isNaN(e[i]);
    if (!bothNaN && !(diff <= bound)) {
      failures++;
      const excess = Number.isNaN(diff) ? Infinity : diff - bound;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (failures > 0) {
    expect.fail(
      `${failures}/${e.length} elements differ beyond atol=${atol} rtol=${rtol}; worst at [${worst}]: ` +
        `actual ${a[worst]} vs expected ${e[worst]}`,
    );
  }
}

/** Largest |x| (the scale for tolerances of sums whose order differs between backends). */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** Deterministic uniform [0, 1) stream (mulberry32). */
export const rng = mulberry32;

export function randomArray(size: number, seed: number, scale = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

export function randomInts(size: number, seed: number, high: number): Int32Array {
  const next = rng(seed);
  const out = new Int32Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(next() * high);
  return out;
}

/**
 * Runs `fn` on `backend` and returns copies of its outputs' values; every tensor it made is
 * disposed. Inputs are built inside `fn` so that they live on that backend.
 */
export async function runOn(backend: 'cpu' | 'wasm', fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const out = fn();
    return (Array.isArray(out) ? out : [out]).map((t) => Float32Array.from(t.dataSync()));
  });
}
