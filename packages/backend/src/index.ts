export { BackendError } from './BackendError.js';
export { initBackend, activeBackend, webGpuAdapterInfo, BACKEND_NAMES, type BackendName } from './initBackend.js';
export { BindingLimitError } from './BindingLimitError.js';
export type { WebGpuAdapterSummary } from './webgpu/WebGpuAdapterSummary.js';
export { geluNew, crossEntropyPerToken } from './ops.js';
export { nativeGemmStatus, selectBatchMatMul, type NativeGemmStatus } from './wasm/nativeGemm.js';
export { causalMatMul, hasCausalMatMul, type CausalMatMulMode } from './wasm/causalMatMul.js';
