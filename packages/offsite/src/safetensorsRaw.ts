import { open, readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OffsiteError } from './OffsiteError.js';

/**
 * Byte-level safetensors access. Plug-in must copy the source's non-adapter tensors bit for bit and
 * keep its dtypes and sharding, which a float32 round trip through a tensor library cannot promise.
 */

export type RawDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Offsets inside the data section. */
  begin: number;
  end: number;
}

export interface RawSafetensors {
  path: string;
  /** Byte offset of the data section in the file. */
  dataStart: number;
  /** Entries in header order. */
  entries: RawEntry[];
  metadata: Record<string, string> | undefined;
}

function bad(path: string, message: string): OffsiteError {
  return new OffsiteError('SAFETENSORS_INVALID', message, { where: path });
}

/** Parses and checks the header (lengths, offsets, dtype × shape = bytes); reads no tensor data. */
export async function readRawHeader(path: string): Promise<RawSafetensors> {
  const size = (await stat(path)).size;
  const fh = await open(path, 'r');
  try {
    if (size < 8) throw bad(path, 'file shorter than the 8-byte header length');
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8) throw bad(path, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (cause) {
      throw new OffsiteError('SAFETENSORS_INVALID', 'header is not JSON', { where: path, cause });
    }
    const dataStart = 8 + headerLen;
    const dataLen = size - dataStart;
    const entries: RawEntry[] = [];
    let metadata: Record<string, string> | undefined;
    for (const [name, value] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = value as Record<string, string>;
        continue;
      }
      const v = value as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      if (!v || typeof v.dtype !== 'string' || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets)) {
        throw bad(path, `tensor ${name} lacks dtype, shape or data_offsets`);
      }
      const [begin, end] = v.data_offsets;
      const width = DTYPE_BYTES[v.dtype];
      if (width === undefined) throw bad(path, `tensor ${name} has unknown dtype ${v.dtype}`);
      if (!(begin >= 0 && end >= begin && end <= dataLen)) throw bad(path, `tensor ${name} offsets [${begin}, ${end}] fall outside the data (${dataLen} bytes)`);
      if (numel(v.shape) * width !== end - begin) throw bad(path, `tensor ${name}: ${v.dtype} × [${v.shape}] does not match ${end - begin} bytes`);
      entries.push({ name, dtype: v.dtype, shape: v.shape, begin, end });
    }
    return { path, dataStart, entries, metadata };
  } finally {
    await fh.close();
  }
}

/** Raw bytes of the given entries, read in one pass over the file. */
export async function readRawTensors(file: RawSafetensors, names?: Iterable<string>): Promise<Map<string, Uint8Array>> {
  const want = names ? new Set(names) : undefined;
  const out = new Map<string, Uint8Array>();
  const fh = await open(file.path, 'r');
  try {
    for (const e of file.entries) {
      if (want && !want.has(e.name)) continue;
      const buf = new Uint8Array(e.end - e.begin);
      await fh.read(buf, 0, buf.length, file.dataStart + e.begin);
      out.set(e.name, buf);
    }
  } finally {
    await fh.close();
  }
  return out;
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Serialises tensors (in the given order) into safetensors bytes; the header is padded to 8 bytes. */
export function encodeSafetensors(tensors: RawTensor[], metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes, ...tensors.map((t) => t.bytes)];
}

/** The 8-byte length + header of an existing file, keeping its key order and data offsets (padded to 8 bytes). */
export function encodeHeaderLike(file: RawSafetensors): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (file.metadata) header.__metadata__ = file.metadata;
  for (const e of file.entries) header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes];
}

/** The safetensors files of a HF model dir: the index's shards in order, or `model.safetensors`. */
export async function modelWeightFiles(dir: string): Promise<string[]> {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const parsed = JSON.parse(await readFile(index, 'utf8')) as { weight_map?: Record<string, string> };
    const files = [...new Set(Object.values(parsed.weight_map ?? {}))].sort();
    if (files.length === 0) throw new OffsiteError('SAFETENSORS_INVALID', 'index lists no shards', { where: index });
    return files;
  }
  if (existsSync(join(dir, 'model.safetensors'))) return ['model.safetensors'];
  throw new OffsiteError('MODEL_NOT_FOUND', 'no model.safetensors or model.safetensors.index.json; pass a Hugging Face model directory', { where: dir });
}

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** float32 values → bytes of `dtype` (F32, F16 or BF16; round to nearest even). */
export function encodeFloats(values: Float32Array, dtype: string): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < values.length; i++) {
      const b = bits[i];
      if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) out[i] = (b >>> 16) | 0x40;
      else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  } else if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16(bits[i]);
  } else {
    throw new OffsiteError('UNSUPPORTED_DTYPE', `cannot write floating-point values as ${dtype}`);
  }
  return new Uint8Array(out.buffer);
}

/** Bytes of `dtype` (F32, F16, BF16) → float32 values. */
export function decodeFloats(bytes: Uint8Array, dtype: string): Float32Array {
  const copy = new Uint8Array(bytes); // aligned copy
  if (dtype === 'F32') return new Float32Array(copy.buffer);
  const half = new Uint16Array(copy.buffer);
  const out = new Float32Array(half.length);
  const outBits = new Uint32Array(out.buffer);
  if (dtype === 'BF16') {
    for (let i = 0; i < half.length; i++) outBits[i] = half[i] << 16;
  } else if (dtype === 'F16') {
    for (let i = 0; i < half.length; i++) out[i] = f16ToF32(half[i]);
  } else {
    throw new OffsiteError('UNSUPPORTED_DTYPE', `cannot read ${dtype} as floating point`);
  }
  return out;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function f32ToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return half;
}
