import { ScaleotError } from '@scaleot/core';

/**
 * Failures of the cluster layer. Codes: BAD_OPTION, ROUND_FAILED, STALE_JOB, NOT_FOUND, FORBIDDEN,
 * UNAUTHORIZED, CONFLICT, BAD_REQUEST, REDIS_UNREACHABLE, PIPELINE_FAILED, BAD_TOKENS_FILE.
 */
export class ClusterError extends ScaleotError {
  constructor(code: string, message: string, options: { where?: string; cause?: unknown; unrecoverable?: boolean } = {}) {
    super(code, message, options);
  }
}
