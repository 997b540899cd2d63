import * as tf from '@tensorflow/tfjs';

interface DeviceBackend {
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
  disposeData(dataId: object): void;
}

/**
 * AddN on webgpu in groups that fit the device's storage-buffer slots (inputs + 1 output): the shipped
 * kernel binds every input at once, and past `maxStorageBuffersPerShaderStage` (16 on GLES drivers)
 * WebGPU rejects the pipeline and silently drops the whole command buffer.
 */
export function makeAddNWebGpu(shipped: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as DeviceBackend;
    const group = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    let inputs = args.inputs as unknown as tf.TensorInfo[];
    if (inputs.length <= group) return shipped(args);
    const made: tf.TensorInfo[] = [];
    while (inputs.length > group) {
      const next: tf.TensorInfo[] = [];
      for (let i = 0; i < inputs.length; i += group) {
        const part = inputs.slice(i, i + group);
        if (part.length === 1) {
          next.push(part[0]);
          continue;
        }
        const sum = shipped({ ...args, inputs: part as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
        made.push(sum);
        next.push(sum);
      }
      inputs = next;
    }
    const out = shipped({ ...args, inputs: inputs as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
    for (const t of made) backend.disposeData(t.dataId);
    return out;
  };
}
