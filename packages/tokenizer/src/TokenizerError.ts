import { ScaleotError } from '@scaleot/core';

/** A tokenizer directory that cannot be used: a file is missing, is not JSON, or lacks what we need. */
export class TokenizerError extends ScaleotError {
  constructor(message: string, options: { where: string; cause?: unknown }) {
    super('INVALID_TOKENIZER', message, { ...options, unrecoverable: true });
  }
}
