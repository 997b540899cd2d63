import * as tf from '@tensorflow/tfjs';
import { heapView, wasmInternals } from './WasmBackendInternals.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/**
 * GatherV2 for wasm. The shipped kernel is right for batchDims = 0 and is kept for it; with
 * batchDims > 0 it returns wrong values on small inputs and reads out of bounds on large ones,
 * so those calls are served here by slice copies on the heap.
 */
export function makeGatherV2Wasm(shipped: tf.KernelFunc): (args: KernelArgs) => tf.TensorInfo {
  return (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const batchDimsAttr = Number(args.attrs?.batchDims ?? 0);
    if (batchDimsAttr === 0) {
      return shipped(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const backend = wasmInternals(args.backend);
    const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
    const batchDims = batchDimsAttr < 0 ? batchDimsAttr + indices.shape.length : batchDimsAttr;
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as tf.TensorInfo as tf.Tensor,
      indices as tf.TensorInfo as tf.Tensor,
      axis,
      batchDims,
    );
    const { batchSize, outerSize, dimSize, sliceSize, outputShape } = info;
    const perBatch = tf.util.sizeFromShape(indices.shape) / batchSize;
    const out = backend.makeOutput(outputShape, x.dtype);
    if (tf.util.sizeFromShape(outputShape) === 0) return out;
    const outValues = heapView(backend, out);
    const xValues = heapView(backend, x);
    const idx = heapView(backend, indices) as Int32Array;
    for (let i = 0; i < idx.length; i++) {
      if (idx[i] < 0 || idx[i] >= dimSize) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dimSize - 1}]`);
      }
    }
    // x viewed as [batch, outer, dim, slice], indices as [batch, perBatch],
    // out as [batch, outer, perBatch, slice].
    let dst = 0;
    for (let bi = 0; bi < batchSize; bi++) {
      for (let o = 0; o < outerSize; o++) {
        const rowBase = (bi * outerSize + o) * dimSize;
        for (let j = 0; j < perBatch; j++) {
          const src = (rowBase + idx[bi * perBatch + j]) * sliceSize;
          outValues.set(xValues.subarray(src, src + sliceSize), dst);
          dst += sliceSize;
        }
      }
    }
    return out;
  };
}
