/** The dtypes this package converts to and from numbers. */
export type DType = 'F32' | 'F16' | 'BF16' | 'I64';

/**
 * Every dtype name the safetensors format defines. A file may hold any of them (headers are
 * validated for all); only {@link DType}s can be decoded, the rest can be copied as raw bytes.
 */
export type SafetensorsDType =
  | DType
  | 'BOOL'
  | 'F4'
  | 'F6_E2M3'
  | 'F6_E3M2'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'F8_E4M3FNUZ'
  | 'F8_E5M2FNUZ'
  | 'I16'
  | 'U16'
  | 'I32'
  | 'U32'
  | 'C64'
  | 'F64'
  | 'U64';

/**
 * Bits per element, in the reference implementation's enum order (ascending size). The writer
 * orders tensors by this order descending, as the reference does, so every tensor lands at an
 * offset aligned to its own element size.
 */
const BITS: ReadonlyArray<readonly [SafetensorsDType, number]> = [
  ['BOOL', 8],
  ['F4', 4],
  ['F6_E2M3', 6],
  ['F6_E3M2', 6],
  ['U8', 8],
  ['I8', 8],
  ['F8_E5M2', 8],
  ['F8_E4M3', 8],
  ['F8_E8M0', 8],
  ['F8_E4M3FNUZ', 8],
  ['F8_E5M2FNUZ', 8],
  ['I16', 16],
  ['U16', 16],
  ['F16', 16],
  ['BF16', 16],
  ['I32', 32],
  ['U32', 32],
  ['F32', 32],
  ['C64', 64],
  ['F64', 64],
  ['I64', 64],
  ['U64', 64],
];

const BITS_BY_NAME = new Map<string, number>(BITS);
const RANK_BY_NAME = new Map<string, number>(BITS.map(([name], i) => [name, i]));

export const SUPPORTED_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16', 'I64'];

export function isSafetensorsDType(name: string): name is SafetensorsDType {
  return BITS_BY_NAME.has(name);
}

export function isSupportedDType(name: string): name is DType {
  return (SUPPORTED_DTYPES as readonly string[]).includes(name);
}

export function dtypeBits(dtype: SafetensorsDType): number {
  return BITS_BY_NAME.get(dtype) as number;
}

/** The reference implementation's ordering rank (larger elements first when sorted descending). */
export function dtypeRank(dtype: SafetensorsDType): number {
  return RANK_BY_NAME.get(dtype) as number;
}

/** Number of elements of a shape (1 for a 0-d scalar). Exact up to 2^53. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Byte length of `shape` elements of `dtype`, or undefined when the element count does not fill
 * whole bytes (sub-byte dtypes) or the size is not an exact integer below 2^53.
 */
export function byteLengthOf(dtype: SafetensorsDType, shape: readonly number[]): number | undefined {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  const bits = n * BigInt(dtypeBits(dtype));
  if (bits % 8n !== 0n) return undefined;
  const bytes = bits / 8n;
  return bytes > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(bytes);
}
