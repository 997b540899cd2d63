import * as tf from '@tensorflow/tfjs';
import { createLogger } from '@scaleot/core';
import { GuardedWebGpuBackend } from './GuardedWebGpuBackend.js';
import { openDawnDevice, webGpuOptionsFromEnv, type DawnSearchOptions } from './openDawnDevice.js';
import type { WebGpuAdapterSummary } from './WebGpuAdapterSummary.js';
import { makeAddNWebGpu } from './addN.js';
import { makeUnsortedSegmentSumWebGpu } from './unsortedSegmentSum.js';

let current: WebGpuAdapterSummary | undefined;
let kernelsFixed = false;

function wrapKernel(kernelName: string, wrap: (shipped: tf.KernelFunc) => tf.KernelFunc): void {
  const shipped = tf.getKernel(kernelName, 'webgpu');
  if (shipped === undefined) return;
  tf.unregisterKernel(kernelName, 'webgpu');
  tf.registerKernel({ ...shipped, kernelFunc: wrap(shipped.kernelFunc) });
}

function fixKernels(): void {
  if (kernelsFixed) return;
  wrapKernel('UnsortedSegmentSum', makeUnsortedSegmentSumWebGpu);
  wrapKernel('AddN', makeAddNWebGpu);
  kernelsFixed = true;
}

/**
 * Opens a Dawn device and registers tfjs's `webgpu` backend on it (guarded: binding-size limit,
 * storage-buffer slots, int32 segment sums). tfjs-backend-webgpu is imported before `navigator.gpu` exists, so its own
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
  // Validation errors surface asynchronously and drop the work they belong to: never let one pass unlogged.
  const log = createLogger('backend.webgpu');
  device.addEventListener('uncapturederror', (event) => {
    log.error({ error: (event as GPUUncapturedErrorEvent).error.message }, 'WebGPU reported an error: results of the failing dispatch are invalid');
  });
  void device.lost.then((info) => {
    if (info.reason !== 'destroyed') log.error({ reason: info.reason, message: info.message }, 'WebGPU device lost');
  });
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
