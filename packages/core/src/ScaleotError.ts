/**
 * Base class of every error the project throws on purpose. `code` is stable and machine-readable
 * (tests, job results and HTTP answers key on it); `where` names the file, job or field at fault;
 * the message says what is wrong and how to fix it.
 */
export class ScaleotError extends Error {
  readonly code: string;
  readonly where?: string;
  /** True when retrying the same input cannot succeed (queues mark such jobs unrecoverable). */
  readonly unrecoverable: boolean;

  constructor(code: string, message: string, options: { where?: string; cause?: unknown; unrecoverable?: boolean } = {}) {
    super(options.where ? `${options.where}: ${message}` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.where = options.where;
    this.unrecoverable = options.unrecoverable ?? true;
  }
}

/** Invalid user input (flags, task files, payloads): never worth a retry. */
export class InvalidInputError extends ScaleotError {
  constructor(message: string, options: { where?: string; cause?: unknown } = {}) {
    super('INVALID_INPUT', message, { ...options, unrecoverable: true });
  }
}
