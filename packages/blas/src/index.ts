import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The OpenBLAS addon (native/gemm.c). Operands live at byte offsets inside one ArrayBuffer, e.g. the
 * tfjs wasm backend's memory: no copies. For i in [0, batch):
 * C_i = op(A_{aIndex[i]}) op(B_{bIndex[i]}), A_j at aOffset + j*m*k*4 bytes (row-major [m, k], [k, m]
 * when transA), B_j at bOffset + j*k*n*4 ([k, n], [n, k] when transB), C_i at cOffset + i*m*n*4
 * ([m, n]); a null index is the identity. Slices are bounds-checked against the buffer (RangeError).
 */
export interface NativeGemm {
  sgemmBatched(
    heap: ArrayBuffer,
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    aOffset: number,
    bOffset: number,
    cOffset: number,
    batch: number,
    aIndex: Int32Array | null,
    bIndex: Int32Array | null,
  ): void;
  /**
   * Causal attention products over `batch` contiguous slices, skipping the blocks the causal mask
   * zeroes (query block i sees keys of blocks 0..i, blocks of `block` rows). Mode 0 (scores):
   * C [t,t] = A [t,d] B [t,d]^T on the block lower triangle, 0 elsewhere (the caller still adds the
   * causal bias, for the diagonal blocks). Mode 1: C [t,d] = L [t,t] B [t,d], L lower triangular.
   * Mode 2: C [t,d] = L^T B. L must be zero above its diagonal (causal probabilities are): inside the
   * diagonal blocks it is read, blocks wholly above the diagonal are not.
   */
  sgemmCausal(
    heap: ArrayBuffer,
    mode: 0 | 1 | 2,
    batch: number,
    t: number,
    d: number,
    block: number,
    aOffset: number,
    bOffset: number,
    cOffset: number,
  ): void;
  /** OpenBLAS threads, process-wide (openblas_set_num_threads). */
  setThreads(threads: number): void;
  getThreads(): number;
  /** openblas_get_config(), the core OpenBLAS picked and its threading model. */
  config(): string;
}

export type NativeGemmUnavailableCode = 'DISABLED' | 'NOT_BUILT' | 'LOAD_FAILED';

export type NativeGemmLoad =
  | { ok: true; gemm: NativeGemm; path: string }
  | { ok: false; code: NativeGemmUnavailableCode; reason: string };

/** The setting that turns the native GEMM off (`0`, `false`, `off`, `no`). */
export const NATIVE_GEMM_SETTING = 'SCALEOT_NATIVE_GEMM';

const ADDON_PATH = fileURLToPath(new URL('../build/Release/scaleot_blas.node', import.meta.url));

let cached: NativeGemmLoad | undefined;

export function nativeGemmDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env[NATIVE_GEMM_SETTING]?.trim().toLowerCase();
  return value === '0' || value === 'false' || value === 'off' || value === 'no';
}

/**
 * Loads the addon once per thread (it is context-aware: worker threads load their own instance).
 * Never throws: the result says why the addon is unavailable (turned off by SCALEOT_NATIVE_GEMM=0,
 * not built at install time, or libopenblas missing at run time).
 */
export function loadNativeGemm(env: NodeJS.ProcessEnv = process.env): NativeGemmLoad {
  if (nativeGemmDisabled(env)) {
    return { ok: false, code: 'DISABLED', reason: `${NATIVE_GEMM_SETTING}=${env[NATIVE_GEMM_SETTING]}` };
  }
  if (cached !== undefined) return cached;
  if (!existsSync(ADDON_PATH)) {
    cached = {
      ok: false,
      code: 'NOT_BUILT',
      reason:
        'the OpenBLAS addon was not built at install time (apt-get install -y libopenblas-dev, then npm rebuild @scaleot/blas)',
    };
    return cached;
  }
  try {
    const gemm = createRequire(import.meta.url)(ADDON_PATH) as NativeGemm;
    cached = { ok: true, gemm, path: ADDON_PATH };
  } catch (error) {
    cached = {
      ok: false,
      code: 'LOAD_FAILED',
      reason: `the OpenBLAS addon failed to load (${(error as Error).message.split('\n')[0]}; is libopenblas0 installed?)`,
    };
  }
  return cached;
}
