import { CheckpointError } from '@scaleot/checkpoint';

/**
 * Typed reads of HF config.json keys with the errors every family gives: BAD_CONFIG naming the file
 * (`where`) and the key, saying what the value must be. Aliases follow HF's `attribute_map`.
 */
export class ConfigFields {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly where: string,
  ) {}

  fail(field: string, message: string): CheckpointError {
    return new CheckpointError('BAD_CONFIG', this.where, `config field "${field}" ${message}`, { tensor: field });
  }

  /** The value of `field`, or of its alias; both present and different is an error. */
  value(field: string, alias?: string): unknown {
    const own = this.raw[field];
    const other = alias === undefined ? undefined : this.raw[alias];
    if (alias !== undefined && own !== undefined && own !== null && other !== undefined && other !== null && own !== other) {
      throw this.fail(field, `is ${JSON.stringify(own)} but its alias "${alias}" is ${JSON.stringify(other)}; keep one of them.`);
    }
    return own ?? other ?? undefined;
  }

  positiveInt(field: string, alias?: string): number {
    const value = this.value(field, alias);
    if (value === undefined || value === null) {
      const named = alias ? `"${field}" (or "${alias}")` : `"${field}"`;
      throw new CheckpointError('BAD_CONFIG', this.where, `config has no ${named}; add it as a positive integer.`, { tensor: field });
    }
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw this.fail(field, `is ${JSON.stringify(value)}; it must be a positive integer.`);
    return value;
  }

  optionalPositiveInt(field: string, fallback: number, alias?: string): number {
    const value = this.value(field, alias);
    return value === undefined || value === null ? fallback : this.positiveInt(field, alias);
  }

  positiveNumber(field: string, fallback: number): number {
    const value = this.raw[field] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw this.fail(field, `is ${JSON.stringify(value)}; it must be a positive number such as ${fallback}.`);
    return value;
  }

  bool(field: string, fallback: boolean): boolean {
    const value = this.raw[field] ?? fallback;
    if (typeof value !== 'boolean') throw this.fail(field, `is ${JSON.stringify(value)}; it must be true or false.`);
    return value;
  }

  /** A string from `allowed` (e.g. activation functions this build implements). */
  oneOf<T extends string>(field: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw[field] ?? fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      throw this.fail(field, `is ${JSON.stringify(value)}; this build supports ${allowed.map((a) => `"${a}"`).join(', ')}.`);
    }
    return value as T;
  }

  /** Attention geometry: heads divide the width (unless head_dim is given) and the kv heads divide the heads. */
  attentionShape(hidden: { field: string; value: number }, heads: { field: string; value: number }, kvHeads?: { field: string; value: number }, headDimField = 'head_dim'): { nKvHead: number; headDim: number } {
    const given = this.raw[headDimField];
    let headDim: number;
    if (given === undefined || given === null) {
      if (hidden.value % heads.value !== 0) {
        throw this.fail(hidden.field, `(${hidden.value}) is not divisible by ${heads.field} (${heads.value}) and "${headDimField}" is absent; attention splits the width evenly across heads. Fix one of them or give "${headDimField}".`);
      }
      headDim = hidden.value / heads.value;
    } else {
      headDim = this.positiveInt(headDimField);
    }
    const nKvHead = kvHeads?.value ?? heads.value;
    if (heads.value % nKvHead !== 0) {
      throw this.fail(kvHeads!.field, `(${nKvHead}) does not divide ${heads.field} (${heads.value}); grouped-query attention shares each key/value head among an equal number of query heads.`);
    }
    return { nKvHead, headDim };
  }
}
