import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../BackendError.js';

/** What the kernels here rely on inside `BackendWasm` of tfjs-backend-wasm 4.22.0 (not public API). */
export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

export type WasmFunction = (...args: unknown[]) => unknown;

export interface WasmModule {
  HEAPU8: Uint8Array;
  cwrap(name: string, returnType: null | 'number', argTypes: Array<'number' | 'array'>): WasmFunction;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

export interface WasmBackendInternals {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData | undefined };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** Narrows a kernel's backend to the wasm internals, failing loudly if tfjs was upgraded under us. */
export function wasmInternals(backend: unknown): WasmBackendInternals {
  const candidate = backend as Partial<WasmBackendInternals> | undefined;
  if (
    candidate?.wasm?.tfjs?.registerTensor === undefined ||
    typeof candidate.wasm.cwrap !== 'function' ||
    typeof candidate.dataIdNextNumber !== 'number' ||
    candidate.dataIdMap === undefined ||
    typeof candidate.makeOutput !== 'function'
  ) {
    throw new BackendError(
      'WASM_INTERNALS_CHANGED',
      'the tfjs wasm backend does not expose the internals the scaleot kernel fixes need; ' +
        'pin @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm to exactly 4.22.0',
      { where: '@scaleot/backend' },
    );
  }
  return candidate as WasmBackendInternals;
}

export function tensorData(backend: WasmBackendInternals, info: tf.TensorInfo): WasmTensorData {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) {
    throw new BackendError('WASM_TENSOR_MISSING', 'a kernel input is not resident on the wasm backend', {
      where: '@scaleot/backend',
      unrecoverable: true,
    });
  }
  return data;
}

/**
 * A typed view of a tensor's bytes on the wasm heap. Take it after the last allocation of the
 * kernel: growing the heap replaces the underlying ArrayBuffer and detaches older views.
 */
export function heapView(backend: WasmBackendInternals, info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array {
  const { memoryOffset } = tensorData(backend, info);
  const size = tf.util.sizeFromShape(info.shape);
  const buffer = backend.wasm.HEAPU8.buffer;
  switch (info.dtype) {
    case 'float32':
      return new Float32Array(buffer, memoryOffset, size);
    case 'int32':
      return new Int32Array(buffer, memoryOffset, size);
    case 'bool':
      return new Uint8Array(buffer, memoryOffset, size);
    default:
      throw new BackendError('WASM_DTYPE', `dtype ${info.dtype} is not supported by this wasm kernel`, {
        where: '@scaleot/backend',
      });
  }
}

/**
 * Registers `size` elements at `memoryOffset` as a tensor of the C side only (no JS record, no
 * allocation), so that C kernels addressed by tensor id can work on a slice of a larger buffer.
 * Release with `releaseHeapSlice`, which never frees the memory.
 */
export function registerHeapSlice(backend: WasmBackendInternals, memoryOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, memoryOffset);
  return id;
}

export function releaseHeapSlice(backend: WasmBackendInternals, id: number): void {
  // dispose_data also runs the disposal callbacks, which delete XNNPACK operators cached on the id.
  backend.wasm.tfjs.disposeData(id);
}
