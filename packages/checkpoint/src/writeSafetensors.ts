import { atomicWrite } from '@scaleot/core';
import { resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import { byteLengthOf, dtypeRank, elementCount, isSafetensorsDType, SUPPORTED_DTYPES, type SafetensorsDType } from './dtypes.js';
import { bytesOf, writeFully } from './fileIo.js';
import { float32ToBfloat16, float32ToFloat16 } from './halfFloat.js';
import { METADATA_KEY } from './header.js';

export interface WriteTensor {
  name: string;
  /** Any {@link DType}; other safetensors dtypes only with raw Uint8Array data. */
  dtype: SafetensorsDType;
  shape: number[];
  /**
   * Float32Array: values (F32 as is; F16/BF16 rounded to nearest even, NaN/Inf kept).
   * Uint16Array: raw F16/BF16 bits. BigInt64Array: I64 values. Uint8Array: the stored bytes of `dtype`.
   */
  data: Float32Array | Uint16Array | BigInt64Array | Uint8Array;
}

/** A validated tensor, encoded to bytes only when written (one tensor's copy alive at a time). */
export interface PreparedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  byteLength: number;
  encode(): Uint8Array;
}

function kindOf(data: unknown): string {
  return Object.prototype.toString.call(data).slice(8, -1);
}

/** Validates one tensor for writing into `file`; throws what a reader would reject. */
export function prepareTensor(file: string, t: WriteTensor): PreparedTensor {
  const { name, dtype, shape, data } = t;
  const fail = (code: 'BAD_ENTRY' | 'UNSUPPORTED_DTYPE' | 'BYTE_LENGTH_MISMATCH', message: string) =>
    new CheckpointError(code, file, `cannot write tensor "${name}": ${message}`, { tensor: name });
  if (typeof name !== 'string' || name === METADATA_KEY) throw fail('BAD_ENTRY', `the name must be a string other than "${METADATA_KEY}"; rename the tensor.`);
  if (typeof dtype !== 'string' || !isSafetensorsDType(dtype)) {
    throw fail('UNSUPPORTED_DTYPE', `dtype ${JSON.stringify(dtype)} is not a safetensors dtype; use one of ${SUPPORTED_DTYPES.join(', ')}.`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw fail('BAD_ENTRY', `shape ${JSON.stringify(shape)} must be a list of non-negative integers.`);
  }
  const byteLength = byteLengthOf(dtype, shape);
  if (byteLength === undefined) throw fail('BAD_ENTRY', `${dtype} with shape [${shape.join(', ')}] does not fill whole bytes.`);
  const count = elementCount(shape);
  const kind = kindOf(data);
  const lengthCheck = (have: number, want: number, unit: string) => {
    if (have !== want) {
      throw fail(
        'BYTE_LENGTH_MISMATCH',
        `shape [${shape.join(', ')}] of ${dtype} needs ${want} ${unit} but the ${kind} holds ${have}; fix the shape or the data.`,
      );
    }
  };
  const prepared = (encode: () => Uint8Array): PreparedTensor => ({ name, dtype, shape: [...shape], byteLength, encode });
  if (kind === 'Uint8Array') {
    lengthCheck((data as Uint8Array).length, byteLength, 'bytes');
    return prepared(() => data as Uint8Array);
  }
  if (kind === 'Float32Array' && (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16')) {
    const values = data as Float32Array;
    lengthCheck(values.length, count, 'elements');
    if (dtype === 'F32') return prepared(() => bytesOf(values));
    return prepared(() => bytesOf(dtype === 'F16' ? float32ToFloat16(values) : float32ToBfloat16(values)));
  }
  if (kind === 'Uint16Array' && (dtype === 'F16' || dtype === 'BF16')) {
    lengthCheck((data as Uint16Array).length, count, 'elements');
    return prepared(() => bytesOf(data as Uint16Array));
  }
  if (kind === 'BigInt64Array' && dtype === 'I64') {
    lengthCheck((data as BigInt64Array).length, count, 'elements');
    return prepared(() => bytesOf(data as BigInt64Array));
  }
  throw fail(
    'BAD_ENTRY',
    `a ${kind} cannot be written as ${dtype}; pass Float32Array for F32/F16/BF16, Uint16Array (raw bits) for F16/BF16, BigInt64Array for I64, or Uint8Array (raw bytes) for any dtype.`,
  );
}

/** Checks `metadata` is string → string, as the format requires. */
export function checkMetadata(file: string, metadata: unknown): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new CheckpointError('BAD_ENTRY', file, `metadata must be an object of strings; got ${JSON.stringify(metadata)}.`, { tensor: METADATA_KEY });
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') {
      throw new CheckpointError('BAD_ENTRY', file, `metadata "${k}" is ${JSON.stringify(v)}; safetensors metadata values must be strings (JSON.stringify them).`, {
        tensor: METADATA_KEY,
      });
    }
  }
  return metadata as Record<string, string>;
}

/** Validates all tensors (unique names, consistent lengths) before anything touches the disk. */
export function prepareTensors(file: string, tensors: readonly WriteTensor[]): PreparedTensor[] {
  const seen = new Set<string>();
  return tensors.map((t) => {
    const p = prepareTensor(file, t);
    if (seen.has(p.name)) {
      throw new CheckpointError('DUPLICATE_TENSOR', file, `cannot write tensor "${p.name}" twice; tensor names must be unique.`, { tensor: p.name });
    }
    seen.add(p.name);
    return p;
  });
}

/**
 * The order the safetensors reference writes: larger dtypes first, then by name (UTF-8 byte
 * order). Every tensor then starts at a multiple of its element size; with one dtype (the usual
 * case) it is plain sorted-name order.
 */
export function storageOrder(tensors: readonly PreparedTensor[]): PreparedTensor[] {
  const keyed = tensors.map((t) => ({ t, rank: dtypeRank(t.dtype), key: Buffer.from(t.name, 'utf8') }));
  keyed.sort((a, b) => b.rank - a.rank || Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.t);
}

/** 8-byte length + JSON header padded with spaces to a multiple of 8, for tensors in storage order. */
export function encodeHeader(ordered: readonly PreparedTensor[], metadata: Record<string, string> | undefined): Uint8Array {
  // Built by hand: object keys that look like integers would be reordered by JSON.stringify.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const meta = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(',')}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const end = offset + t.byteLength;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Writes prepared tensors to `path` atomically. */
export async function writePrepared(path: string, tensors: readonly PreparedTensor[], metadata: Record<string, string> | undefined): Promise<void> {
  const ordered = storageOrder(tensors);
  const header = encodeHeader(ordered, metadata);
  await atomicWrite(path, async (handle) => {
    await writeFully(handle, header);
    for (const t of ordered) {
      if (t.byteLength > 0) await writeFully(handle, t.encode());
    }
  });
}

/**
 * Writes one .safetensors file atomically: header padded with spaces to a multiple of 8, tensors
 * contiguous with no holes, in the reference's order (larger dtypes first, then sorted by name).
 * Everything is validated first; invalid input leaves nothing on disk.
 */
export async function writeSafetensors(path: string, tensors: WriteTensor[], metadata?: Record<string, string>): Promise<void> {
  const file = resolve(path);
  const meta = checkMetadata(file, metadata);
  await writePrepared(file, prepareTensors(file, tensors), meta);
}

/**
 * A whole safetensors file as byte chunks (header, then each tensor's data in storage order), for
 * artifact directories that are written atomically as a whole. Validated like `writeSafetensors`.
 */
export function encodeSafetensors(tensors: WriteTensor[], metadata?: Record<string, string>, where = 'safetensors'): Uint8Array[] {
  const meta = checkMetadata(where, metadata);
  const ordered = storageOrder(prepareTensors(where, tensors));
  return [encodeHeader(ordered, meta), ...ordered.filter((t) => t.byteLength > 0).map((t) => t.encode())];
}

/** One tensor's stored bytes (validated as for writing; F16/BF16 rounded to nearest even). */
export function encodeTensorData(t: WriteTensor, where = 'safetensors'): Uint8Array {
  return prepareTensor(where, t).encode();
}
