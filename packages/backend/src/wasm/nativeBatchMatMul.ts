import * as tf from '@tensorflow/tfjs';
import type { NativeGemm } from '@scaleot/blas';
import { broadcastIndexMap, matMulGeometry } from './batchMatMul.js';
import { tensorData, wasmInternals } from './WasmBackendInternals.js';

/** The broadcast index map, or null when it is the identity (the operand has the full batch). */
function sliceIndex(shape: number[], outBatchShape: number[], batch: number): Int32Array | null {
  if (tf.util.sizeFromShape(shape) === batch && shape.length === outBatchShape.length) {
    let same = true;
    for (let d = 0; d < shape.length && same; d++) same = shape[d] === outBatchShape[d];
    if (same) return null;
  }
  return broadcastIndexMap(shape, outBatchShape);
}

/**
 * BatchMatMul on the wasm backend through OpenBLAS: cblas_sgemm reads the operands and writes the
 * output in place on the wasm heap (transposes are BLAS flags, broadcast batches an index map, a
 * shared right operand folds the batch into the rows). Same semantics as tfjs' BatchMatMul.
 */
export function makeNativeBatchMatMul(gemm: NativeGemm) {
  return function batchMatMulNative(args: {
    inputs: tf.NamedTensorInfoMap;
    backend: unknown;
    attrs?: tf.NamedAttrMap;
  }): tf.TensorInfo {
    const backend = wasmInternals(args.backend);
    const { a, b, transposeA, transposeB, m, k, n, aBatchShape, bBatchShape, outBatchShape, outShape, batch } =
      matMulGeometry(args.inputs, args.attrs);
    const out = backend.makeOutput(outShape, 'float32');
    if (batch * m * n === 0) return out;
    const aIndex = sliceIndex(aBatchShape, outBatchShape, batch);
    const bIndex = sliceIndex(bBatchShape, outBatchShape, batch);
    // After the last allocation (makeOutput may grow the heap, which replaces its ArrayBuffer).
    const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
    gemm.sgemmBatched(
      heap,
      transposeA,
      transposeB,
      m,
      n,
      k,
      tensorData(backend, a).memoryOffset,
      tensorData(backend, b).memoryOffset,
      tensorData(backend, out).memoryOffset,
      batch,
      aIndex,
      bIndex,
    );
    return out;
  };
}
