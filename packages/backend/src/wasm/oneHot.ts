import * as tf from '@tensorflow/tfjs';
import { heapView, wasmInternals } from './WasmBackendInternals.js';

/**
 * OneHot for wasm. The shipped C kernel always writes int32 bit patterns, so a float32 one-hot
 * comes out as denormals (1 -> 1.4e-45). This writes the requested dtype.
 */
export function oneHotWasm(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = wasmInternals(args.backend);
  const { indices } = args.inputs as { indices: tf.TensorInfo };
  const depth = Number(args.attrs?.depth);
  const onValue = Number(args.attrs?.onValue ?? 1);
  const offValue = Number(args.attrs?.offValue ?? 0);
  const dtype = (args.attrs?.dtype ?? 'int32') as tf.DataType;
  const out = backend.makeOutput([...indices.shape, depth], dtype);
  const outValues = heapView(backend, out);
  outValues.fill(offValue);
  const ids = heapView(backend, indices) as Int32Array;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >= 0 && id < depth) outValues[i * depth + id] = onValue;
  }
  return out;
}
