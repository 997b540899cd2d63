import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { initBackend, nativeGemmStatus } from '@scaleot/backend';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

// Own fork: wasm selected directly through tfjs first, as a library or an old script might.
it('registers the wasm kernel fixes even when wasm is already the active backend', async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).not.toMatch(/^batchMatMul(Wasm|Native)$/);
  await expect(initBackend('wasm')).resolves.toBe('wasm');
  expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).toBe(
    nativeGemmStatus()?.gemm === 'openblas' ? 'batchMatMulNative' : 'batchMatMulWasm',
  );
  // The shipped GatherV2 was set up at backend init and still serves batchDims = 0.
  const out = tf.gather(tf.tensor([[1, 2], [3, 4], [5, 6]]), tf.tensor([2, 0], [2], 'int32'));
  expect(Array.from(out.dataSync())).toEqual([5, 6, 1, 2]);
  const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor([2, 2, 0], [3], 'int32'))))(tf.zeros([3, 2]));
  expect(Array.from(grad.dataSync())).toEqual([1, 1, 0, 0, 2, 2]);
});
