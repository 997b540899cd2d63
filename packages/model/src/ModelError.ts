import { ScaleotError } from '@scaleot/core';

/** Misuse of the model API or a model/weights mismatch. */
export class ModelError extends ScaleotError {
  constructor(code: string, message: string, options: { where?: string; cause?: unknown; unrecoverable?: boolean } = {}) {
    super(code, message, options);
  }
}
