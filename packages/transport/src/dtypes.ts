import { TransportError } from './TransportError.js';

/** Element types on the wire. `F16` and `BF16` travel as raw 16-bit patterns in a `Uint16Array`. */
export type DType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';

export type TensorData = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint8ArrayConstructor;

const ARRAY_OF: Record<DType, TypedArrayConstructor> = {
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I32: Int32Array,
  I64: BigInt64Array,
  U8: Uint8Array,
};

export const DTYPES: readonly DType[] = Object.keys(ARRAY_OF) as DType[];

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(ARRAY_OF, value);
}

export function bytesPerElement(dtype: DType): number {
  return ARRAY_OF[dtype].BYTES_PER_ELEMENT;
}

/** The dtype a typed array implies; `Uint16Array` is ambiguous (F16 or BF16) and needs it spelled out. */
export function dtypeOf(data: TensorData): DType | undefined {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Uint8Array) return 'U8';
  return undefined;
}

export function matchesDType(data: TensorData, dtype: DType): boolean {
  // Buffer is a Uint8Array subclass, which is fine for U8.
  return data instanceof ARRAY_OF[dtype];
}

/**
 * A typed-array view over `bytes` without copying when the offset is aligned for the element size;
 * otherwise one copy into fresh, aligned memory.
 */
export function viewAs(dtype: DType, bytes: Uint8Array): TensorData {
  const Ctor = ARRAY_OF[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new TransportError('BAD_FRAME', `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  if (bytes.byteOffset % size === 0) return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / size);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, bytes.byteLength / size);
}

export function emptyArray(dtype: DType, byteLength: number): TensorData {
  const Ctor = ARRAY_OF[dtype];
  return new Ctor(byteLength / Ctor.BYTES_PER_ELEMENT);
}
