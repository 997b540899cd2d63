import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../BackendError.js';

/**
 * UnsortedSegmentSum on webgpu: float32 by tfjs's kernel (correct), int32 refused, since
 * tfjs-backend-webgpu 4.22.0 returns wrong int32 sums without an error and cannot read GPU data
 * back synchronously in Node to sum on the host.
 */
export function makeUnsortedSegmentSumWebGpu(shipped: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'int32') {
      throw new BackendError(
        'WEBGPU_INT32_SEGMENT_SUM',
        `unsortedSegmentSum of an int32 tensor [${x.shape.join(', ')}] gives wrong sums on the webgpu backend; ` +
          'cast it to float32 first (exact while sums stay below 2^24) or use SCALEOT_BACKEND=wasm',
        { where: 'webgpu' },
      );
    }
    return shipped(args);
  };
}
