import { ScaleotError } from '@scaleot/core';

/**
 * A task spec or task dataset that cannot be used. `file` is the spec or JSONL file at fault, `field`
 * the spec field or row field, `line` the 1-based line of a JSONL file; `where` joins them for the message.
 */
export class TaskError extends ScaleotError {
  readonly file: string;
  readonly field?: string;
  readonly line?: number;

  constructor(message: string, options: { file: string; field?: string; line?: number; cause?: unknown }) {
    const where = `${options.file}${options.line !== undefined ? `:${options.line}` : ''}${options.field !== undefined ? ` (${options.field})` : ''}`;
    super('INVALID_TASK', message, { where, cause: options.cause, unrecoverable: true });
    this.file = options.file;
    this.field = options.field;
    this.line = options.line;
  }
}
