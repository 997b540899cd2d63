import { ScaleotError } from '@scaleot/core';

export type CheckpointErrorCode =
  | 'TRUNCATED'
  | 'HEADER_LENGTH'
  | 'HEADER_TOO_LARGE'
  | 'BAD_HEADER_JSON'
  | 'BAD_ENTRY'
  | 'DUPLICATE_TENSOR'
  | 'OUT_OF_BOUNDS'
  | 'OVERLAP'
  | 'HOLE'
  | 'BYTE_LENGTH_MISMATCH'
  | 'UNSUPPORTED_DTYPE'
  | 'BAD_INDEX'
  | 'MISSING_SHARD'
  | 'MISSING_TENSOR'
  | 'SHAPE_MISMATCH'
  | 'BAD_CONFIG'
  | 'UNEXPECTED_TENSOR'
  | 'TIED_WEIGHTS_DIFFER'
  | 'NOT_A_CHECKPOINT';

export interface CheckpointErrorOptions {
  /** The tensor (or config field) at fault, when there is one. */
  tensor?: string;
  cause?: unknown;
}

/**
 * A checkpoint file or directory that cannot be read or written as asked. `file` is the path at
 * fault (also the error's `where`, so it leads the message); retrying the same files never helps.
 */
export class CheckpointError extends ScaleotError {
  declare readonly code: CheckpointErrorCode;
  readonly file: string;
  readonly tensor?: string;

  constructor(code: CheckpointErrorCode, file: string, message: string, options: CheckpointErrorOptions = {}) {
    super(code, message, { where: file, cause: options.cause, unrecoverable: true });
    this.file = file;
    this.tensor = options.tensor;
  }
}
