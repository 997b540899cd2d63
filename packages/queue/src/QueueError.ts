import { ScaleotError } from '@scaleot/core';

/**
 * Misuse of the queue layer (not a bad payload):
 * - `UNKNOWN_JOB_KIND`: no schema registered under that name.
 * - `NO_HANDLER`: a worker took a job of a kind it has no handler for (route kinds to separate queues).
 * - `INVALID_OPTIONS`: contradictory or out-of-range options.
 */
export type QueueErrorCode = 'UNKNOWN_JOB_KIND' | 'NO_HANDLER' | 'INVALID_OPTIONS' | 'CANCELLED';

export class QueueError extends ScaleotError {
  declare readonly code: QueueErrorCode;

  constructor(code: QueueErrorCode, message: string, options: { where?: string; cause?: unknown } = {}) {
    super(code, message, { ...options, unrecoverable: true });
  }
}
