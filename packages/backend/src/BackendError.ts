import { ScaleotError } from '@scaleot/core';

/**
 * The tfjs backend cannot be selected or used as asked: unknown name, optional native package
 * missing, or wasm-backend internals that no longer match the pinned tfjs version.
 */
export class BackendError extends ScaleotError {
  constructor(code: string, message: string, options: { where?: string; cause?: unknown; unrecoverable?: boolean } = {}) {
    super(code, message, options);
  }
}
