import * as tf from '@tensorflow/tfjs';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { BackendError } from '../BackendError.js';
import { BindingLimitError } from '../BindingLimitError.js';

/** tfjs-backend-webgpu stores float32, int32 and bool as 4 bytes per element. */
const BYTES_PER_ELEMENT = 4;

type RunProgram = WebGPUBackend['runWebGPUProgram'];

function bytesOf(shape: readonly number[]): number {
  return tf.util.sizeFromShape(shape as number[]) * BYTES_PER_ELEMENT;
}

/**
 * tfjs's WebGPU backend, refusing with a typed error (before anything is dispatched or allocated)
 * any program whose output or input would be bound with more bytes than the device's
 * `maxStorageBufferBindingSize`, or that binds more storage buffers than the device has slots for:
 * in both cases WebGPU computes garbage or drops the work without an exception.
 */
export class GuardedWebGpuBackend extends WebGPUBackend {
  private readonly bindingLimit: number;
  private readonly bufferSlots: number;

  constructor(device: GPUDevice, adapterInfo: GPUAdapterInfo) {
    super(device, adapterInfo);
    this.bindingLimit = device.limits.maxStorageBufferBindingSize;
    this.bufferSlots = device.limits.maxStorageBuffersPerShaderStage;
  }

  /**
   * tfjs reads GPU data synchronously through OffscreenCanvas, which Node lacks (it would throw a bare
   * ReferenceError): say what to do instead. Data still on the host reads as before.
   */
  override readSync(dataId: object): ReturnType<WebGPUBackend['readSync']> {
    const data = this.tensorMap.get(dataId);
    if (data.values == null && data.dtype !== 'string' && data.dtype !== 'complex64' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
      throw new BackendError(
        'WEBGPU_SYNC_READ',
        `a synchronous read (dataSync/arraySync, or moving a tensor to another backend) of a ${data.dtype} [${data.shape.join(', ')}] ` +
          'tensor held by the GPU; WebGPU in Node reads only asynchronously: use await tensor.data() / array(), or SCALEOT_BACKEND=wasm',
        { where: 'webgpu' },
      );
    }
    return super.readSync(dataId);
  }

  override runWebGPUProgram(...args: Parameters<RunProgram>): ReturnType<RunProgram> {
    const [program, inputs, , , output] = args;
    const name = program.constructor?.name ?? 'WebGPU program';
    const outShape = output?.shape ?? program.outputShape;
    if (bytesOf(outShape) > this.bindingLimit) {
      throw new BindingLimitError(`the output of ${name}`, outShape, bytesOf(outShape), this.bindingLimit);
    }
    if (inputs.length + 1 > this.bufferSlots) {
      // Past the slot limit WebGPU drops the whole command buffer without an exception.
      throw new BackendError(
        'WEBGPU_TOO_MANY_BINDINGS',
        `${name} binds ${inputs.length} inputs and 1 output, over this GPU's maxStorageBuffersPerShaderStage of ${this.bufferSlots}; ` +
          'split the op into smaller groups or use SCALEOT_BACKEND=wasm',
        { where: 'webgpu' },
      );
    }
    for (const input of inputs) {
      if (bytesOf(input.shape) > this.bindingLimit) {
        throw new BindingLimitError(`an input of ${name}`, input.shape, bytesOf(input.shape), this.bindingLimit);
      }
    }
    return super.runWebGPUProgram(...args);
  }
}
