import { bytesPerElement, dtypeOf, matchesDType, type DType, type TensorData } from './dtypes.js';
import { TransportError } from './TransportError.js';

/** JSON-serialisable values (frame headers and envelopes carry them). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One named array as it travels: dtype, shape (row-major) and the elements. */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
  /** Free-form JSON carried in the tensor's header (e.g. the layer it belongs to). */
  readonly meta?: JsonValue;
}

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/**
 * A tensor from a typed array; the dtype is inferred except for `Uint16Array` (say 'F16' or 'BF16').
 * The array is referenced, not copied.
 */
export function createTensor(data: TensorData, shape: readonly number[] = [data.length], dtype?: DType, meta?: JsonValue): Tensor {
  const resolved = dtype ?? dtypeOf(data);
  if (!resolved) {
    throw new TransportError('INVALID_TENSOR', 'a Uint16Array tensor needs an explicit dtype: pass "F16" or "BF16"');
  }
  const tensor: Tensor = meta === undefined ? { dtype: resolved, shape: [...shape], data } : { dtype: resolved, shape: [...shape], data, meta };
  assertTensor(tensor, 'tensor');
  return tensor;
}

/** Throws INVALID_TENSOR unless dtype, array type, shape and byte length agree. */
export function assertTensor(tensor: Tensor, name: string): void {
  if (!matchesDType(tensor.data, tensor.dtype)) {
    throw new TransportError('INVALID_TENSOR', `dtype ${tensor.dtype} does not match a ${tensor.data.constructor.name}`, { where: name });
  }
  if (!tensor.shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw new TransportError('INVALID_TENSOR', `shape [${tensor.shape.join(', ')}] must hold non-negative integers`, { where: name });
  }
  const expected = elementCount(tensor.shape) * bytesPerElement(tensor.dtype);
  if (expected !== tensor.data.byteLength) {
    throw new TransportError(
      'INVALID_TENSOR',
      `shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${expected} bytes but the array holds ${tensor.data.byteLength}`,
      { where: name },
    );
  }
}
