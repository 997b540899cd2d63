import * as tf from '@tensorflow/tfjs';
import { loadNativeGemm, type NativeGemmUnavailableCode } from '@scaleot/blas';
import { batchMatMulWasm } from './batchMatMul.js';
import { CAUSAL_MAT_MUL, makeCausalMatMulNative } from './causalMatMul.js';
import { makeNativeBatchMatMul } from './nativeBatchMatMul.js';

/** Which GEMM the wasm backend's BatchMatMul runs on, and why. */
export interface NativeGemmStatus {
  /** `openblas`: the @scaleot/blas addon; `wasm`: the XNNPACK-based kernel of this package. */
  gemm: 'openblas' | 'wasm';
  /** OpenBLAS threads (process-wide) when active. */
  threads?: number;
  /** openblas_get_config() when active. */
  library?: string;
  /** Why the native GEMM is not used. */
  code?: NativeGemmUnavailableCode;
  reason?: string;
}

let status: NativeGemmStatus | undefined;

function replaceBatchMatMul(kernelFunc: unknown): void {
  if (tf.getKernel('BatchMatMul', 'wasm') !== undefined) tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc });
}

/**
 * OpenBLAS threads: OPENBLAS_NUM_THREADS when set (OpenBLAS reads it itself), else 1. Every CPU job
 * already runs one data-parallel replica per core (worker threads), and OpenBLAS' count is
 * process-wide: more BLAS threads per call would oversubscribe the cores the replicas use.
 */
function configureThreads(setThreads: (n: number) => void, env: NodeJS.ProcessEnv): void {
  const fromEnv = Number(env.OPENBLAS_NUM_THREADS);
  if (!(Number.isInteger(fromEnv) && fromEnv >= 1)) setThreads(1);
}

/**
 * Registers the wasm BatchMatMul: the OpenBLAS kernel when `preferNative` and the addon loads
 * (SCALEOT_NATIVE_GEMM=0 turns it off), with the causal attention products (causalMatMul.ts),
 * else the wasm kernel and no causal products. Returns what was registered.
 */
export function selectBatchMatMul(preferNative = true, env: NodeJS.ProcessEnv = process.env): NativeGemmStatus {
  const load = preferNative ? loadNativeGemm(env) : ({ ok: false, code: 'DISABLED', reason: 'turned off by the caller' } as const);
  if (load.ok) {
    configureThreads((n) => load.gemm.setThreads(n), env);
    replaceBatchMatMul(makeNativeBatchMatMul(load.gemm));
    if (tf.getKernel(CAUSAL_MAT_MUL, 'wasm') === undefined) {
      tf.registerKernel({ kernelName: CAUSAL_MAT_MUL, backendName: 'wasm', kernelFunc: makeCausalMatMulNative(load.gemm) as unknown as tf.KernelFunc });
    }
    status = { gemm: 'openblas', threads: load.gemm.getThreads(), library: load.gemm.config() };
  } else {
    replaceBatchMatMul(batchMatMulWasm);
    if (tf.getKernel(CAUSAL_MAT_MUL, 'wasm') !== undefined) tf.unregisterKernel(CAUSAL_MAT_MUL, 'wasm');
    status = { gemm: 'wasm', code: load.code, reason: load.reason };
  }
  return status;
}

/** What `selectBatchMatMul` registered last (undefined before the wasm backend was prepared). */
export function nativeGemmStatus(): NativeGemmStatus | undefined {
  return status;
}
