import type * as tf from '@tensorflow/tfjs';

/**
 * Identity for wasm without the copy. The shipped kernel memcpys the whole tensor, and the engine
 * calls Identity for every tensor it saves for the backward pass (hundreds per training step).
 * Sharing the buffer with a reference count is what the wasm Reshape and the cpu Identity already
 * do, and it is safe because no wasm kernel writes into its inputs (variables get a new buffer on assign).
 */
export function identityWasm(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  (args.backend as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}
