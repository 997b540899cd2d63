import { ScaleotError } from '@scaleot/core';

type ErrorOptions = { where?: string; cause?: unknown; unrecoverable?: boolean };

/** Bad input to an offsite-tuning step (layouts, datasets, artifacts that do not fit the model). */
export class OffsiteError extends ScaleotError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * A manifest (`emulator.json` / `adapter.json`) that cannot be trusted: missing, not JSON, another
 * format, an unknown version or a missing/ill-typed field. Codes: MANIFEST_MISSING, MANIFEST_JSON,
 * MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_FIELD.
 */
export class ManifestError extends OffsiteError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * An adapter that does not belong to the model it is plugged into. Codes: ADAPTER_SOURCE_MISMATCH
 * (hash of the source checkpoint), ADAPTER_NAMES_MISMATCH, ADAPTER_SHAPE_MISMATCH.
 */
export class AdapterMismatchError extends OffsiteError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}
