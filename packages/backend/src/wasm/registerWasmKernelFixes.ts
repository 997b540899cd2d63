import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../BackendError.js';
import { makeGatherV2Wasm } from './gatherV2.js';
import { selectBatchMatMul } from './nativeGemm.js';
import { identityWasm } from './identity.js';
import { oneHotWasm } from './oneHot.js';
import { unsortedSegmentSumWasm } from './unsortedSegmentSum.js';

let registered = false;

function replaceKernel(kernelName: string, kernelFunc: unknown, setupFunc?: tf.KernelConfig['setupFunc']): void {
  if (tf.getKernel(kernelName, 'wasm') !== undefined) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc, setupFunc });
}

/**
 * Replaces wasm kernels of tfjs-backend-wasm 4.22.0 that are slow or wrong for GPT-2 training;
 * BatchMatMul runs on OpenBLAS when the @scaleot/blas addon loads (nativeGemm.ts).
 * Must run after the wasm package is imported (it registers the shipped kernels) and is
 * idempotent. Works whether or not the wasm backend is already initialised: the replacements
 * need no setup, and the shipped GatherV2 keeps its own setup for the batchDims = 0 path.
 */
export function registerWasmKernelFixes(): void {
  if (registered) return;
  const shippedGather = tf.getKernel('GatherV2', 'wasm');
  if (shippedGather === undefined || tf.getKernel('BatchMatMul', 'wasm') === undefined) {
    throw new BackendError(
      'WASM_NOT_LOADED',
      'the wasm kernels are not registered; import @tensorflow/tfjs-backend-wasm 4.22.0 before the kernel fixes',
      { where: '@scaleot/backend' },
    );
  }
  selectBatchMatMul();
  replaceKernel('UnsortedSegmentSum', unsortedSegmentSumWasm);
  replaceKernel('OneHot', oneHotWasm);
  replaceKernel('Identity', identityWasm);
  replaceKernel('GatherV2', makeGatherV2Wasm(shippedGather.kernelFunc), shippedGather.setupFunc);
  registered = true;
}
