export { BackendError } from './BackendError.js';
export { initBackend, activeBackend, BACKEND_NAMES, type BackendName } from './initBackend.js';
export { geluNew, crossEntropyPerToken } from './ops.js';
