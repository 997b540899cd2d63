import { describe, expect, it } from 'vitest';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '@scaleot/checkpoint';
import { refBf16ToNumber, refHalfToNumber, refNumberToBf16, refNumberToHalf, rng } from './helpers.js';

const f32 = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const allHalfBits = () => {
  const h = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) h[i] = i;
  return h;
};

describe('float16 decode', () => {
  it('matches the float64 reference on all 65536 patterns', () => {
    const out = float16ToFloat32(allHalfBits());
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const ref = refHalfToNumber(h);
      const ok = Number.isNaN(ref) ? Number.isNaN(out[h]) : Object.is(out[h], ref);
      if (!ok) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('decodes known values', () => {
    const out = float16ToFloat32(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555]));
    expect(Array.from(out.subarray(0, 8))).toEqual([1, -2, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity]);
    expect(out[8]).toBeCloseTo(0.333251953125, 12);
  });

  it('keeps NaN payloads bit-exactly through a round trip', () => {
    const nans = new Uint16Array([0x7e00, 0x7c01, 0xfd23, 0x7fff]);
    expect(Array.from(float32ToFloat16(float16ToFloat32(nans)))).toEqual(Array.from(nans));
  });
});

describe('float16 encode (round to nearest even)', () => {
  it('round-trips every non-NaN half exactly', () => {
    const h = allHalfBits();
    const back = float32ToFloat16(float16ToFloat32(h));
    let mismatches = 0;
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!isNaN && back[i] !== i) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('matches the float64 reference on edge cases', () => {
    const edge = [
      0, -0, 1, -1, 65504, 65519.99, 65520, 65536, -65520, 1e9, 3.4028234663852886e38,
      2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 2 ** -26, 3 * 2 ** -25, 2 ** -14, 2 ** -14 - 2 ** -25,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 2049, 2051, 0.1, -0.1, 1e-45,
    ].map(Math.fround);
    const out = float32ToFloat16(new Float32Array(edge));
    edge.forEach((x, i) => expect([x, out[i]]).toEqual([x, refNumberToHalf(x)]));
    // Spelled out, to not rely only on the reference:
    expect(Array.from(float32ToFloat16(new Float32Array([65519, 65520, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11]))))
      .toEqual([0x7bff, 0x7c00, 0x0000, 0x0002, 0x3c00, 0x3c02]);
  });

  it('matches the float64 reference on 200k random float32 patterns', () => {
    const random = rng(7);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) {
      // Bias exponents into the half range so subnormals and rounding boundaries are hit often.
      const exp = i % 2 === 0 ? 100 + Math.floor(random() * 45) : Math.floor(random() * 256);
      bits[i] = ((random() < 0.5 ? 0x80000000 : 0) | (exp << 23) | Math.floor(random() * 0x800000)) >>> 0;
    }
    const x = new Float32Array(bits.buffer);
    const out = float32ToFloat16(x);
    let mismatches = 0;
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(x[i])) {
        if (!Number.isNaN(refHalfToNumber(out[i])) || (out[i] & 0x8000) !== (bits[i] >>> 16 & 0x8000)) mismatches++;
      } else if (out[i] !== refNumberToHalf(x[i])) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('preserves Inf and keeps NaN a NaN (even with only low payload bits)', () => {
    const x = f32([0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xff800fff]);
    const out = float32ToFloat16(x);
    expect(out[0]).toBe(0x7c00);
    expect(out[1]).toBe(0xfc00);
    for (const i of [2, 3, 4]) expect(Number.isNaN(refHalfToNumber(out[i]))).toBe(true);
    expect(out[4] & 0x8000).toBe(0x8000);
  });
});

describe('bfloat16', () => {
  it('decodes all 65536 patterns as the float64 reference', () => {
    const out = bfloat16ToFloat32(allHalfBits());
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const ref = refBf16ToNumber(h);
      if (Number.isNaN(ref) ? !Number.isNaN(out[h]) : !Object.is(out[h], ref)) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('encodes with round to nearest even, as the reference, including max and overflow', () => {
    const random = rng(11);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(random() * 2 ** 32) >>> 0;
    // Exact ties, max finite, overflow, subnormals.
    bits.set([0x3f808000, 0x3f818000, 0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0x00008000, 0x00018000, 0x00000001, 0x80000000], 0);
    const x = new Float32Array(bits.buffer);
    const out = float32ToBfloat16(x);
    let mismatches = 0;
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(x[i])) {
        if (!Number.isNaN(refBf16ToNumber(out[i]))) mismatches++;
      } else if (out[i] !== refNumberToBf16(x[i])) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(Array.from(out.subarray(0, 5))).toEqual([0x3f80, 0x3f82, 0x7f7f, 0x7f80, 0x7f80]);
  });

  it('preserves Inf and NaN', () => {
    const out = float32ToBfloat16(f32([0x7f800000, 0xff800000, 0x7f800001, 0xffc00000]));
    expect(Array.from(out.subarray(0, 2))).toEqual([0x7f80, 0xff80]);
    expect(Number.isNaN(refBf16ToNumber(out[2]))).toBe(true);
    expect(out[3]).toBe(0xffc0);
  });
});
