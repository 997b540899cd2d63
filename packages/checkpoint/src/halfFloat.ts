// Conversions between float32 and the two 16-bit float formats. All work on bit patterns through
// Uint32Array views: a NaN that passes through a JS number may lose its payload, bits never do.
// Host byte order is assumed little-endian (as safetensors is), which holds for every Node target.

let halfTable: Uint32Array | undefined;

function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise into a float32 normal.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** 65536 float32 bit patterns, built on first use (256 KiB): decoding becomes one lookup. */
/** binary16 bits → float32 bits, for all 65536 patterns (built once). */
export function halfToFloatBits(): Uint32Array {
  return table();
}

function table(): Uint32Array {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfBitsToFloatBits(h);
  }
  return halfTable;
}

/** IEEE binary16 bits to float32; exact (every half is a float32), NaN payloads kept. */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  const t = table();
  for (let i = 0; i < bits.length; i++) outBits[i] = t[bits[i]];
  return out;
}

/** One float32 bit pattern to binary16, round to nearest even (the numpy/IEEE algorithm). */
export function floatBitsToHalfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) {
    // |x| >= 65536, Inf or NaN.
    if (fExp === 0x7f800000) {
      const sig = f & 0x007fffff;
      if (sig !== 0) {
        // Keep the top payload bits; a payload that lives only in the low bits would turn into
        // Inf, so keep it a NaN.
        const nan = 0x7c00 | (sig >>> 13);
        return sign | (nan === 0x7c00 ? 0x7c01 : nan);
      }
    }
    return sign | 0x7c00;
  }
  if (fExp <= 0x38000000) {
    // |x| < 2^-14: half subnormal or zero.
    if (fExp < 0x33000000) return sign; // below half the smallest subnormal
    const e = fExp >>> 23;
    let sig = 0x00800000 + (f & 0x007fffff);
    sig >>>= 113 - e;
    // Round half to even; the bits shifted out above still count as "more than a half".
    if ((sig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) sig += 0x1000;
    // A carry into the exponent gives the smallest normal, which is right.
    return sign | (sig >>> 13);
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  let sig = f & 0x007fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  // A carry into the exponent is the correctly rounded result, up to and including Inf.
  return sign | (hExp + (sig >>> 13));
}

/** float32 to IEEE binary16 bits, round to nearest even; overflow to ±Inf, NaN stays NaN. */
export function float32ToFloat16(x: Float32Array): Uint16Array {
  const inBits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = floatBitsToHalfBits(inBits[i]);
  return out;
}

/** bfloat16 bits to float32: the high half of the float32 pattern. */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** One float32 bit pattern to bfloat16, round to nearest even. */
export function floatBitsToBfloat16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x007fffff) !== 0) {
    // NaN: truncating could clear every payload bit and make it Inf; set the quiet bit.
    return (f >>> 16) | 0x0040;
  }
  // Below 2^32 for every non-NaN pattern (the largest is -Inf), so the quotient fits in 16 bits.
  const rounded = (f >>> 0) + 0x7fff + ((f >>> 16) & 1);
  return Math.floor(rounded / 65536);
}

/** float32 to bfloat16 bits, round to nearest even; overflow to ±Inf, NaN stays NaN. */
export function float32ToBfloat16(x: Float32Array): Uint16Array {
  const inBits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = floatBitsToBfloat16Bits(inBits[i]);
  return out;
}
