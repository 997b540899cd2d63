import { ScaleotError } from '@scaleot/core';

/** One problem found in a payload, at a JSONPath-like location such as `$.batch.windowIndices[3]`. */
export interface PayloadIssue {
  path: string;
  message: string;
}

/**
 * A job payload that does not match its kind's schema (or carries tensors). Unrecoverable: the same
 * payload fails the same way on every attempt, so the worker fails the job at once.
 */
export class InvalidJobPayloadError extends ScaleotError {
  readonly kind: string;
  readonly issues: readonly PayloadIssue[];

  constructor(kind: string, issues: readonly PayloadIssue[]) {
    const shown = issues.slice(0, 8).map((issue) => `${issue.path} ${issue.message}`);
    if (issues.length > 8) shown.push(`... and ${issues.length - 8} more`);
    super('INVALID_JOB_PAYLOAD', `invalid ${kind} payload: ${shown.join('; ')}`, { where: `job ${kind}`, unrecoverable: true });
    this.kind = kind;
    this.issues = issues;
  }
}
