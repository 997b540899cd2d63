import { BackendError } from './BackendError.js';

/**
 * A tensor would be bound to a WebGPU shader with more bytes than the device's
 * `maxStorageBufferBindingSize`. Drivers then read or write out of range without any error, so the
 * webgpu backend refuses before dispatch. Retrying the same job on the same device cannot help.
 */
export class BindingLimitError extends BackendError {
  /** Bytes the tensor needs. */
  readonly bytes: number;
  /** The device's `maxStorageBufferBindingSize`. */
  readonly limit: number;

  constructor(what: string, shape: readonly number[], bytes: number, limit: number) {
    super(
      'TENSOR_OVER_BINDING_LIMIT',
      `${what} of shape [${shape.join(', ')}] needs ${bytes} bytes, over this GPU's maxStorageBufferBindingSize ` +
        `of ${limit} bytes (WebGPU would compute garbage); lower the micro-batch or sequence length so that ` +
        `the largest activation (rows × seq × vocab × 4 bytes for the logits) fits, or use SCALEOT_BACKEND=wasm`,
      { where: 'webgpu', unrecoverable: true },
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}
