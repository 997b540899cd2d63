import { ScaleotError } from '@scaleot/core';

/**
 * Stable codes of {@link TransportError}. Whether a retry can help is part of the code:
 * - `CHECKSUM_MISMATCH`: payload bytes changed in flight; the receiver dropped the message, resend it.
 * - `TIMEOUT`: no answer in time (peer down, wrong CURVE key, dropped connection); resend or give up.
 * - `REJECTED`: the peer refused the message for a reason carried in the message; see the text.
 * - `MESSAGE_TOO_LARGE`: over `maxMessageBytes`; raise the limit on both sides or send less per message.
 * - `BAD_FRAME`: the frames do not follow the wire format (version or header mismatch, truncated message).
 * - `INVALID_TENSOR`: a tensor given to the encoder is inconsistent (shape vs bytes, dtype vs array).
 * - `VERSION_CONFLICT`: a parameter version was published that is not newer than the last one.
 * - `CLOSED`: the socket was closed while the operation was pending.
 */
export type TransportErrorCode =
  | 'CHECKSUM_MISMATCH'
  | 'TIMEOUT'
  | 'REJECTED'
  | 'MESSAGE_TOO_LARGE'
  | 'BAD_FRAME'
  | 'INVALID_TENSOR'
  | 'VERSION_CONFLICT'
  | 'CLOSED';

const RETRYABLE: ReadonlySet<TransportErrorCode> = new Set(['CHECKSUM_MISMATCH', 'TIMEOUT', 'CLOSED']);

/** Every failure of @scaleot/transport. `unrecoverable` is false for codes a resend can fix. */
export class TransportError extends ScaleotError {
  declare readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string, options: { where?: string; cause?: unknown } = {}) {
    super(code, message, { ...options, unrecoverable: !RETRYABLE.has(code) });
  }

  /** True for codes the caller may fix by sending the same thing again. */
  get retryable(): boolean {
    return !this.unrecoverable;
  }
}
