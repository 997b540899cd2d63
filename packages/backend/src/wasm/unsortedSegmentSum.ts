import * as tf from '@tensorflow/tfjs';
import { heapView, wasmInternals } from './WasmBackendInternals.js';

/**
 * UnsortedSegmentSum for wasm (not shipped in 4.22.0; it is the gradient of gather, i.e. of the
 * embedding lookup). A plain loop over heap views: it is memory-bound and touches each input
 * element once. Ids outside [0, numSegments) are dropped, as on the cpu backend.
 */
export function unsortedSegmentSumWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = wasmInternals(args.backend);
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = Number(args.attrs?.numSegments);
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32, got ${x.dtype}`);
  }
  if (segmentIds.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum needs int32 segmentIds, got ${segmentIds.dtype}`);
  }
  const idsRank = segmentIds.shape.length;
  for (let d = 0; d < idsRank; d++) {
    if (x.shape[d] !== segmentIds.shape[d]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must prefix x shape [${x.shape}]`);
    }
  }
  const innerShape = x.shape.slice(idsRank);
  const inner = tf.util.sizeFromShape(innerShape);
  const count = tf.util.sizeFromShape(segmentIds.shape);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  // Views only after the allocation above: it may have grown (and detached) the heap.
  const outValues = heapView(backend, out) as Float32Array | Int32Array;
  outValues.fill(0);
  const xValues = heapView(backend, x) as Float32Array | Int32Array;
  const ids = heapView(backend, segmentIds) as Int32Array;
  for (let i = 0; i < count; i++) {
    const segment = ids[i];
    if (segment < 0 || segment >= numSegments) continue;
    const src = i * inner;
    const dst = segment * inner;
    for (let j = 0; j < inner; j++) outValues[dst + j] += xValues[src + j];
  }
  return out;
}
