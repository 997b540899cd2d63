import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParameterSpec, TensorNaming, WriteTensor } from '@scaleot/checkpoint';
// The family map (what the config means) lives above this package; the tests borrow GPT-2's.
import { familyOf, parseModelConfig } from '@scaleot/model';
import { fixtureModelDir, FIXTURES_DIR } from '../../../test/support/fixtures.js';
import { mulberry32 } from '../../../test/support/numeric.js';

/** Fixtures live in ../shared/fixtures relative to the repository root. */
export const FIXTURES = FIXTURES_DIR;
export const TINY = fixtureModelDir('tiny');
export const SMALL = fixtureModelDir('small');

export async function makeTempDir(prefix = 'scaleot-checkpoint-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** A safetensors file from a header (object or literal text) and a data buffer, written as is. */
export async function writeRawSafetensors(path: string, header: object | string | Uint8Array, data: Uint8Array | number = 0, headerLength?: bigint): Promise<void> {
  const json = header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  await writeFile(path, Buffer.concat([prefix, json, body]));
}

/** Deterministic pseudo-random numbers (mulberry32). */
export const rng = mulberry32;

export const MICRO_CONFIG = {
  model_type: 'gpt2',
  vocab_size: 16,
  n_positions: 8,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  n_inner: null,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
};

/** The parameters a config implies and how its family names them (what Checkpoint.validate takes). */
export function familyParameters(raw: Record<string, unknown>): { specs: ParameterSpec[]; naming: TensorNaming } {
  const config = parseModelConfig(raw, 'test config');
  const family = familyOf(config);
  return { specs: family.expectedParameters(config), naming: family.naming };
}

/** Checkpoint.validate against the family of the checkpoint's own config.json. */
export function validateAgainstConfig(ckpt: { rawConfig: Record<string, unknown>; validate(specs: ParameterSpec[], naming: TensorNaming): Map<string, string> }): Map<string, string> {
  const { specs, naming } = familyParameters(ckpt.rawConfig);
  return ckpt.validate(specs, naming);
}

/** Random F32 tensors for every parameter of `raw` config, optionally with different names/shapes. */
export function microTensors(raw: Record<string, unknown> = MICRO_CONFIG, seed = 1): WriteTensor[] {
  const random = rng(seed);
  return familyParameters(raw).specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (random() - 0.5) * 2;
    return { name: s.name, dtype: 'F32' as const, shape: s.shape, data };
  });
}

// ---- float64 references, written independently of the implementation ----

/** binary16 bits → value, straight from the IEEE definition. */
export function refHalfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits → value. */
export function refBf16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0xff) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -133;
  return sign * (1 + m / 128) * 2 ** (e - 127);
}

/**
 * Round-to-nearest-even by search: non-negative finite patterns 0..maxFinite are increasing in
 * value, so the answer is one of the two neighbours of x; overflow follows IEEE (round to Inf at
 * or beyond the midpoint between the largest finite value and the next power of two).
 */
function makeRefEncoder(decode: (h: number) => number, maxFinite: number, inf: number): (x: number) => number {
  const values = new Float64Array(maxFinite + 1);
  for (let h = 0; h <= maxFinite; h++) values[h] = decode(h);
  const overflowAt = values[maxFinite] + (values[maxFinite] - values[maxFinite - 1]) / 2;
  return (x: number) => {
    if (Number.isNaN(x)) return -1; // callers check NaN separately
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= overflowAt) return sign | inf;
    let lo = 0;
    let hi = maxFinite;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (values[mid] <= a) lo = mid;
      else hi = mid - 1;
    }
    if (values[lo] === a || lo === maxFinite) return sign | lo;
    const below = a - values[lo];
    const above = values[lo + 1] - a;
    if (below < above) return sign | lo;
    if (above < below) return sign | (lo + 1);
    return sign | (lo % 2 === 0 ? lo : lo + 1);
  };
}

export const refNumberToHalf = makeRefEncoder(refHalfToNumber, 0x7bff, 0x7c00);
export const refNumberToBf16 = makeRefEncoder(refBf16ToNumber, 0x7f7f, 0x7f80);
