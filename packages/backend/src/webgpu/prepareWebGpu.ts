import * as tf from '@tensorflow/tfjs';
import { GuardedWebGpuBackend } from './GuardedWebGpuBackend.js';
import { openDawnDevice, webGpuOptionsFromEnv, type DawnSearchOptions } from './openDawnDevice.js';
import type { WebGpuAdapterSummary } from './WebGpuAdapterSummary.js';
import { makeUnsortedSegmentSumWebGpu } from './unsortedSegmentSum.js';

let current: WebGpuAdapterSummary | undefined;
let kernelsFixed = false;

function fixKernels(): void {
  if (kernelsFixed) return;
  const shipped = tf.getKernel('UnsortedSegmentSum', 'webgpu');
  if (shipped !== undefined) {
    tf.unregisterKernel('UnsortedSegmentSum', 'webgpu');
    tf.registerKernel({ ...shipped, kernelFunc: makeUnsortedSegmentSumWebGpu(shipped.kernelFunc) });
  }
  kernelsFixed = true;
}

/**
 * Opens a Dawn device and registers tfjs's `webgpu` backend on it (guarded: binding-size limit,
 * int32 segment sums). tfjs-backend-webgpu is imported before `navigator.gpu` exists, so its own
 * factory (which would ask for an adapter without our choice of instance) never registers; ours
 * does, at priority 0 so that it never becomes a default by accident. Throws, having registered
 * nothing, when no adapter qualifies.
 */
export async function prepareWebGpu(options: DawnSearchOptions = webGpuOptionsFromEnv()): Promise<WebGpuAdapterSummary> {
  if (current !== undefined && tf.findBackendFactory('webgpu') !== null) return current;
  await import('@tensorflow/tfjs-backend-webgpu');
  fixKernels();
  const { gpu, device, adapterInfo, summary } = await openDawnDevice(options);
  // WebGPUBackend's constructor checks navigator.gpu, as in a browser (Node ≥ 21 has a navigator).
  const nav = (globalThis as { navigator?: Record<string, unknown> }).navigator;
  if (nav === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: `Node.js/${process.versions.node}` }, configurable: true, writable: true });
  } else {
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  }
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new GuardedWebGpuBackend(device, adapterInfo), 0);
  current = summary;
  return summary;
}

/** Forgets the webgpu registration after a failed start, so that tfjs cannot pick it up later. */
export function discardWebGpu(): void {
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  current = undefined;
}

/** The adapter the webgpu backend runs on, once `prepareWebGpu` succeeded. */
export function webGpuAdapter(): WebGpuAdapterSummary | undefined {
  return current;
}
