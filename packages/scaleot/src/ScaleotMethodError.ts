import { ScaleotError } from '@scaleot/core';

type ErrorOptions = { where?: string; cause?: unknown; unrecoverable?: boolean };

/**
 * Bad input to a ScaleOT step. Codes: BAD_MATRIX, BAD_RANK, SVD_NO_CONVERGENCE (svd); BAD_ALPHA, BAD_BETA,
 * BAD_GROUP_SIZE, NO_MIDDLE_BLOCKS, ADAPTER_TOO_LARGE, BAD_OPTION (options); BAD_SCORES, BAD_MASK (stage-1
 * pieces); BAD_STAGE1_STATE, STAGE1_STATE_MISMATCH (resume); STAGE1_MISSING, STAGE1_INVALID,
 * STAGE1_SOURCE_MISMATCH, STAGE1_LAYOUT_MISMATCH (stage-1 artifacts used for stage 2); BAD_GRADIENT,
 * DEGENERATE_GRADIENT, EMPTY_BATCH, EMPTY_DATASET (GradOT selection and stage-1 steps).
 */
export class ScaleotMethodError extends ScaleotError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}

/** Stage-1 artifacts that do not belong to the model (or layout) they are used with. */
export class Stage1MismatchError extends ScaleotMethodError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}
