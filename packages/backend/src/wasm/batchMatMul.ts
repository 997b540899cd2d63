import * as tf from '@tensorflow/tfjs';
import {
  heapView,
  registerHeapSlice,
  releaseHeapSlice,
  tensorData,
  wasmInternals,
  type WasmBackendInternals,
  type WasmFunction,
} from './WasmBackendInternals.js';

/*
 * The shipped wasm BatchMatMul reaches XNNPACK's fully-connected operator only for two
 * untransposed operands with batch 1 (batch_mat_mul_impl.cc); every other call, which includes
 * every matmul gradient and all of attention, runs a naive triple loop at ~1.5 GFLOP/s.
 * This kernel brings each operand to row-major [rows, K] x [K, cols] (a blocked transpose where
 * needed, or computing C^T = B^T A^T when that moves fewer elements) and sends every batch slice
 * to the fast path by registering heap slices as C-side tensors. Slices are released right after
 * the call, which also frees the XNNPACK operator cached on their ids (weights are repacked per
 * call: O(K N), small next to the O(M K N) product).
 */

const cwrapCache = new WeakMap<object, { matMul: WasmFunction }>();

function wasmFunctions(backend: WasmBackendInternals): { matMul: WasmFunction } {
  let fns = cwrapCache.get(backend.wasm);
  if (fns === undefined) {
    fns = {
      // a_id, a_shape, a_rank, b_id, b_shape, b_rank, transpose_a, transpose_b, out_id
      matMul: backend.wasm.cwrap('BatchMatMul', null, [
        'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
      ]),
    };
    cwrapCache.set(backend.wasm, fns);
  }
  return fns;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** For each flat index of `outShape`, the flat index of the (right-aligned, broadcast) `shape`. */
export function broadcastIndexMap(shape: number[], outShape: number[]): Int32Array {
  const outSize = tf.util.sizeFromShape(outShape);
  const map = new Int32Array(outSize);
  const offset = outShape.length - shape.length;
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d];
  }
  for (let i = 0; i < outSize; i++) {
    let rest = i;
    let index = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const coord = rest % outShape[d];
      rest = (rest - coord) / outShape[d];
      const own = d - offset;
      if (own >= 0 && shape[own] !== 1) index += coord * strides[own];
    }
    map[i] = index;
  }
  return map;
}

/**
 * [..., rows, cols] -> [..., cols, rows] into a new heap tensor. A blocked JS loop over heap views:
 * the shipped wasm Transpose kernel is 5-10x slower on these shapes (39 ms for 1024x1024).
 */
export function transposeLastTwo(backend: WasmBackendInternals, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const rows = x.shape[rank - 2];
  const cols = x.shape[rank - 1];
  const out = backend.makeOutput([...x.shape.slice(0, -2), cols, rows], x.dtype);
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  const size = rows * cols;
  const batch = size === 0 ? 0 : src.length / size;
  const block = 16;
  for (let b = 0; b < batch; b++) {
    const base = b * size;
    for (let i0 = 0; i0 < rows; i0 += block) {
      const i1 = Math.min(i0 + block, rows);
      for (let j0 = 0; j0 < cols; j0 += block) {
        const j1 = Math.min(j0 + block, cols);
        let i = i0;
        // Four source rows per pass: four sequential read streams, short strided writes.
        for (; i + 3 < i1; i += 4) {
          const s0 = base + i * cols;
          const s1 = s0 + cols;
          const s2 = s1 + cols;
          const s3 = s2 + cols;
          for (let j = j0; j < j1; j++) {
            const d = base + j * rows + i;
            dst[d] = src[s0 + j];
            dst[d + 1] = src[s1 + j];
            dst[d + 2] = src[s2 + j];
            dst[d + 3] = src[s3 + j];
          }
        }
        for (; i < i1; i++) {
          const s = base + i * cols;
          for (let j = j0; j < j1; j++) dst[base + j * rows + i] = src[s + j];
        }
      }
    }
  }
  return out;
}

/**
 * out[i] = left[leftMap[i]] x right[rightMap[i]] for row-major slices left [rows, k],
 * right [k, cols], out [rows, cols], all on the fast XNNPACK path.
 */
function fastBatched(
  backend: WasmBackendInternals,
  left: tf.TensorInfo,
  right: tf.TensorInfo,
  out: tf.TensorInfo,
  leftMap: Int32Array,
  rightMap: Int32Array,
  rows: number,
  k: number,
  cols: number,
): void {
  const { matMul } = wasmFunctions(backend);
  const leftPtr = tensorData(backend, left).memoryOffset;
  const rightPtr = tensorData(backend, right).memoryOffset;
  const outPtr = tensorData(backend, out).memoryOffset;
  const batch = leftMap.length;

  const run = (leftIndex: number, rightIndex: number, outIndex: number, sliceRows: number): void => {
    const aId = registerHeapSlice(backend, leftPtr + leftIndex * rows * k * 4, sliceRows * k);
    const bId = registerHeapSlice(backend, rightPtr + rightIndex * k * cols * 4, k * cols);
    const oId = registerHeapSlice(backend, outPtr + outIndex * rows * cols * 4, sliceRows * cols);
    try {
      matMul(aId, shapeBytes([1, sliceRows, k]), 3, bId, shapeBytes([1, k, cols]), 3, 0, 0, oId);
    } finally {
      releaseHeapSlice(backend, aId);
      releaseHeapSlice(backend, bId);
      releaseHeapSlice(backend, oId);
    }
  };

  // One right operand for every slice and the left slices in order: fold the batch into the rows
  // (one operator, one weight packing).
  let foldable = true;
  for (let i = 0; i < batch && foldable; i++) foldable = rightMap[i] === rightMap[0] && leftMap[i] === i;
  if (foldable) {
    run(0, rightMap[0], 0, batch * rows);
    return;
  }
  for (let i = 0; i < batch; i++) run(leftMap[i], rightMap[i], i, rows);
}

/** Shapes of one BatchMatMul call, checked as tfjs checks them. */
export interface MatMulGeometry {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  m: number;
  k: number;
  n: number;
  aBatchShape: number[];
  bBatchShape: number[];
  outBatchShape: number[];
  outShape: number[];
  batch: number;
}

export function matMulGeometry(inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap | undefined): MatMulGeometry {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const transposeA = Boolean(attrs?.transposeA);
  const transposeB = Boolean(attrs?.transposeB);
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`BatchMatMul on wasm supports float32 only, got ${a.dtype} x ${b.dtype}`);
  }
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  if (aRank < 2 || bRank < 2) {
    throw new Error(`BatchMatMul needs rank >= 2 operands, got shapes [${a.shape}] and [${b.shape}]`);
  }
  const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const k = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const kB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  if (k !== kB) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kB}) of Tensors with shapes ${a.shape} and ${b.shape} ` +
        `and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const aBatchShape = a.shape.slice(0, -2);
  const bBatchShape = b.shape.slice(0, -2);
  const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(aBatchShape, bBatchShape);
  const outShape = [...outBatchShape, m, n];
  const batch = tf.util.sizeFromShape(outBatchShape);
  return { a, b, transposeA, transposeB, m, k, n, aBatchShape, bBatchShape, outBatchShape, outShape, batch };
}

export function batchMatMulWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = wasmInternals(args.backend);
  const { a, b, transposeA, transposeB, m, k, n, aBatchShape, bBatchShape, outBatchShape, outShape, batch } =
    matMulGeometry(args.inputs, args.attrs);

  if (batch * m * n === 0 || k === 0) {
    const out = backend.makeOutput(outShape, 'float32');
    if (batch * m * n > 0) heapView(backend, out).fill(0);
    return out;
  }

  const aMap = broadcastIndexMap(aBatchShape, outBatchShape);
  const bMap = broadcastIndexMap(bBatchShape, outBatchShape);

  // Bytes moved by transposes: direct (C = op(A) op(B)) vs swapped (C^T = op(B)^T op(A)^T, then
  // transpose the result). Both end in row-major operands for the fast path.
  const directCost = (transposeA ? m * k : 0) + (transposeB ? k * n : 0);
  const swappedCost = (transposeB ? 0 : k * n) + (transposeA ? 0 : m * k) + m * n;
  const swapped = swappedCost < directCost;

  const temporaries: tf.TensorInfo[] = [];
  const rowMajor = (x: tf.TensorInfo, transpose: boolean): tf.TensorInfo => {
    if (!transpose) return x;
    const t = transposeLastTwo(backend, x);
    temporaries.push(t);
    return t;
  };
  try {
    if (!swapped) {
      const left = rowMajor(a, transposeA);
      const right = rowMajor(b, transposeB);
      const out = backend.makeOutput(outShape, 'float32');
      fastBatched(backend, left, right, out, aMap, bMap, m, k, n);
      return out;
    }
    const left = rowMajor(b, !transposeB); // [.., n, k]
    const right = rowMajor(a, !transposeA); // [.., k, m]
    const outT = backend.makeOutput([batch, n, m], 'float32');
    temporaries.push(outT);
    fastBatched(backend, left, right, outT, bMap, aMap, n, k, m);
    const out = transposeLastTwo(backend, outT);
    return { dataId: out.dataId, shape: outShape, dtype: out.dtype };
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}
