import * as tf from '@tensorflow/tfjs';
import type { NativeGemm } from '@scaleot/blas';
import { tensorData, wasmInternals } from './WasmBackendInternals.js';

/** The kernel name of `causalMatMul` (registered for wasm only when the OpenBLAS addon is active). */
export const CAUSAL_MAT_MUL = 'ScaleotCausalMatMul';

/**
 * Causal attention products, skipping the blocks a causal mask zeroes (about 40% of the flops at
 * t = 256 with blocks of 64):
 * - `scores`: a [B,t,d], b [B,t,d] -> a·bᵀ [B,t,t], exact on and below the diagonal blocks and 0 in the
 *   blocks above (add the causal bias afterwards, as for a full product);
 * - `lower`: a [B,t,t] lower triangular (zero above the diagonal), b [B,t,d] -> a·b [B,t,d];
 * - `lowerT`: same operands -> aᵀ·b [B,t,d] (dv = pᵀ·dy, dk = dsᵀ·q, no transposes).
 */
export type CausalMatMulMode = 'scores' | 'lower' | 'lowerT';

const MODES: Record<CausalMatMulMode, 0 | 1 | 2> = { scores: 0, lower: 1, lowerT: 2 };

/** Rows per block: OpenBLAS' efficiency on small products vs the share of skipped work. */
export const CAUSAL_BLOCK = 64;

export function makeCausalMatMulNative(gemm: NativeGemm) {
  return function causalMatMulNative(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
    const backend = wasmInternals(args.backend);
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const mode = args.attrs?.mode as CausalMatMulMode;
    if (!(mode in MODES)) throw new Error(`${CAUSAL_MAT_MUL}: unknown mode ${String(mode)}`);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length !== 3 || b.shape.length !== 3) {
      throw new Error(`${CAUSAL_MAT_MUL} needs float32 rank-3 operands, got [${a.shape}] ${a.dtype} and [${b.shape}] ${b.dtype}`);
    }
    const [batch, t, d] = b.shape;
    const aExpected = mode === 'scores' ? [batch, t, d] : [batch, t, t];
    if (a.shape.some((x, i) => x !== aExpected[i])) {
      throw new Error(`${CAUSAL_MAT_MUL} (${mode}): a is [${a.shape}], expected [${aExpected}] for b [${b.shape}]`);
    }
    const out = backend.makeOutput(mode === 'scores' ? [batch, t, t] : [batch, t, d], 'float32');
    const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
    gemm.sgemmCausal(
      heap,
      MODES[mode],
      batch,
      t,
      d,
      CAUSAL_BLOCK,
      tensorData(backend, a).memoryOffset,
      tensorData(backend, b).memoryOffset,
      tensorData(backend, out).memoryOffset,
    );
    return out;
  };
}

/** Whether `causalMatMul` runs on the active backend (wasm with the OpenBLAS addon). */
export function hasCausalMatMul(): boolean {
  return tf.getKernel(CAUSAL_MAT_MUL, tf.getBackend()) !== undefined;
}

/**
 * The causal attention product `mode` (see CausalMatMulMode) on the native kernel. No gradient: for
 * use inside ops with hand-written gradients. Check `hasCausalMatMul()` first.
 */
export function causalMatMul(a: tf.Tensor3D, b: tf.Tensor3D, mode: CausalMatMulMode): tf.Tensor3D {
  return tf.engine().runKernel(CAUSAL_MAT_MUL, { a, b }, { mode }) as tf.Tensor3D;
}
