import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { createLogger, type Logger } from '@scaleot/core';
import { BackendError } from './BackendError.js';
import { nativeGemmStatus } from './wasm/nativeGemm.js';
import { registerWasmKernelFixes } from './wasm/registerWasmKernelFixes.js';
import type { WebGpuAdapterSummary } from './webgpu/WebGpuAdapterSummary.js';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu';

export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'cpu', 'tensorflow', 'webgpu'];

/** Native packages tried in order for the `tensorflow` backend; never dependencies of this repo. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

// tfjs prints a banner through console.warn the first time its CPU backend stores a tensor under Node
// ("Hi, looks like you are running TensorFlow.js in Node.js ..."): the backend is chosen and logged here,
// so the banner is noise in every CLI run and test log. PROD only gates tfjs' console warnings.
tf.env().set('PROD', true);

let log: Logger | undefined;
let webGpu: WebGpuAdapterSummary | undefined;
let chain: Promise<unknown> = Promise.resolve();

function isBackendName(name: unknown): name is BackendName {
  return typeof name === 'string' && (BACKEND_NAMES as readonly string[]).includes(name);
}

/**
 * `auto`: `webgpu` on a real GPU adapter (a software one only with SCALEOT_WEBGPU_SOFTWARE=1), else
 * the native `tensorflow` backend when its package loads, else `wasm`.
 */
const AUTO = 'auto';

function resolveName(name: string | undefined): BackendName | typeof AUTO {
  const fromEnv = process.env.SCALEOT_BACKEND;
  const requested = name ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'wasm');
  if (requested !== AUTO && !isBackendName(requested)) {
    throw new BackendError(
      'UNKNOWN_BACKEND',
      `unknown tfjs backend "${requested}"; valid names are ${BACKEND_NAMES.join(', ')}, ${AUTO}`,
      { where: name === undefined ? 'SCALEOT_BACKEND' : 'initBackend' },
    );
  }
  return requested;
}

async function prepareWasm(): Promise<Record<string, unknown>> {
  // Imported on demand: the import registers wasm as the highest-priority backend, after which
  // any tensor created before an explicit setBackend throws.
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as Record<string, unknown>;
  registerWasmKernelFixes();
  return wasm;
}

function isModuleNotFound(error: unknown, pkg: string): boolean {
  const e = error as { code?: string; message?: string } | undefined;
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(pkg)
  );
}

async function prepareNative(): Promise<string> {
  const failures: string[] = [];
  for (const pkg of NATIVE_PACKAGES) {
    try {
      // A variable specifier keeps TypeScript from resolving a package that is not installed.
      const specifier: string = pkg;
      await import(specifier);
    } catch (error) {
      if (isModuleNotFound(error, pkg)) {
        failures.push(`${pkg} is not installed`);
        continue;
      }
      throw new BackendError(
        'BACKEND_LOAD_FAILED',
        `${pkg} is installed but failed to load (${(error as Error).message}); reinstall it on an image ` +
          'with internet access (its install downloads libtensorflow), or use SCALEOT_BACKEND=wasm',
        { where: 'initBackend', cause: error },
      );
    }
    if (tf.findBackendFactory('tensorflow') === null) {
      throw new BackendError(
        'BACKEND_LOAD_FAILED',
        `${pkg} loaded but registered no "tensorflow" backend on this tfjs engine; its @tensorflow/tfjs ` +
          `must be the same copy as this repository's (4.22.0): npm install -E ${pkg}@4.22.0`,
        { where: 'initBackend' },
      );
    }
    return pkg;
  }
  throw new BackendError(
    'BACKEND_NOT_INSTALLED',
    `the "tensorflow" backend needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (${failures.join('; ')}). ` +
      'Install one in an image built with internet access (its install downloads libtensorflow): ' +
      'npm install -E @tensorflow/tfjs-node@4.22.0 (or -gpu with CUDA), or use SCALEOT_BACKEND=wasm',
    { where: 'initBackend' },
  );
}

async function activate(name: BackendName): Promise<BackendName> {
  // Before the early return: wasm may have been selected with tf.setBackend, without the fixes.
  const wasm = name === 'wasm' ? await prepareWasm() : undefined;
  if (tf.engine().backendName === name) return name;
  const details: Record<string, unknown> = {};
  if (wasm !== undefined) {
    details.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    details.multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    details.getThreadsCount = wasm.getThreadsCount;
  } else if (name === 'tensorflow') {
    details.package = await prepareNative();
  } else if (name === 'webgpu') {
    // Imported on demand: Dawn (21 MB) and the webgpu kernels load only when asked for.
    const { prepareWebGpu } = await import('./webgpu/prepareWebGpu.js');
    webGpu = await prepareWebGpu();
    details.adapter = webGpu;
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    throw new BackendError('BACKEND_INIT_FAILED', `tfjs backend "${name}" failed to initialise: ${(error as Error).message}`, {
      where: 'initBackend',
      cause: error,
    });
  }
  if (!ok) {
    throw new BackendError('BACKEND_INIT_FAILED', `tfjs backend "${name}" failed to initialise (see the tfjs warning above)`, {
      where: 'initBackend',
    });
  }
  await tf.ready();
  const { getThreadsCount, ...rest } = details;
  if (typeof getThreadsCount === 'function') rest.threads = (getThreadsCount as () => number)();
  log ??= createLogger('backend');
  if (wasm !== undefined) logGemm(rest);
  // Once per process: replica and compute threads start the same backend again, which is not news.
  log[isMainThread ? 'info' : 'debug']({ backend: name, tfjs: tf.version.tfjs, ...rest }, `tfjs backend: ${name}`);
  return name;
}

let gemmFallbackLogged = false;

/**
 * The wasm backend's GEMM into the backend line's details; when the OpenBLAS addon is not used, one
 * line of its own saying why (once per process: replica threads log it at debug).
 */
function logGemm(details: Record<string, unknown>): void {
  const gemm = nativeGemmStatus();
  if (gemm === undefined) return;
  details.gemm = gemm.gemm;
  if (gemm.gemm === 'openblas') {
    details.blasThreads = gemm.threads;
    details.blas = gemm.library;
    return;
  }
  if (gemmFallbackLogged || log === undefined) return;
  gemmFallbackLogged = true;
  const level = !isMainThread ? 'debug' : gemm.code === 'DISABLED' ? 'info' : 'warn';
  log[level]({ code: gemm.code, reason: gemm.reason }, `native GEMM unavailable (${gemm.reason}); BatchMatMul runs on the wasm kernels`);
}

/** Undoes a failed webgpu start: tfjs sets its backend name before initialising, and would keep it. */
async function discardFailedWebGpu(): Promise<void> {
  webGpu = undefined;
  const { discardWebGpu } = await import('./webgpu/prepareWebGpu.js');
  discardWebGpu();
}

/** `webgpu`, or `wasm` with one logged line when no adapter qualifies or the start fails. */
async function activateWebGpu(): Promise<BackendName> {
  try {
    return await activate('webgpu');
  } catch (error) {
    await discardFailedWebGpu();
    log ??= createLogger('backend');
    const e = error as { code?: string; message?: string };
    log.warn({ code: e.code, reason: e.message }, `SCALEOT_BACKEND=webgpu: WebGPU unavailable (${e.message}); using wasm`);
    return activate('wasm');
  }
}

async function activateAuto(): Promise<BackendName> {
  const reasons: string[] = [];
  for (const name of ['webgpu', 'tensorflow'] as const) {
    try {
      return await activate(name);
    } catch (error) {
      if (name === 'webgpu') await discardFailedWebGpu();
      reasons.push(`${name}: ${(error as Error).message}`);
    }
  }
  log ??= createLogger('backend');
  log.info({ reasons }, 'SCALEOT_BACKEND=auto: no GPU adapter and no native tensorflow backend, using wasm');
  return activate('wasm');
}

/**
 * Selects and initialises the tfjs backend: `name`, else SCALEOT_BACKEND, else `wasm`; `auto` picks
 * `webgpu` on a real GPU, else the native `tensorflow` backend when it loads, else `wasm`. `webgpu`
 * that cannot start falls back to `wasm` with one logged warning: the returned name (and
 * `tf.getBackend()`) is the backend actually running. Calling it
 * again with the active backend is a no-op; with another name it switches. For `wasm` the kernel
 * fixes of this package are registered first. Calls are serialised.
 */
export function initBackend(name?: BackendName | typeof AUTO | string): Promise<BackendName> {
  let resolved: BackendName | typeof AUTO;
  try {
    resolved = resolveName(name);
  } catch (error) {
    return Promise.reject(error);
  }
  const run = () => (resolved === AUTO ? activateAuto() : resolved === 'webgpu' ? activateWebGpu() : activate(resolved));
  const next = chain.then(run, run);
  chain = next.catch(() => undefined);
  return next;
}

/** The backend tfjs is running on now, if it is one of ours (undefined before `initBackend`). */
export function activeBackend(): BackendName | undefined {
  const current = tf.engine().backendName;
  return isBackendName(current) ? current : undefined;
}

/** The WebGPU adapter the `webgpu` backend runs on (undefined unless it is the active backend). */
export function webGpuAdapterInfo(): WebGpuAdapterSummary | undefined {
  return tf.engine().backendName === 'webgpu' ? webGpu : undefined;
}
