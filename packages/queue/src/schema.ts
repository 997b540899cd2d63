import type { PayloadIssue } from './InvalidJobPayloadError.js';

/**
 * A tiny validation DSL for job payloads: each schema checks a value and reports issues with their path;
 * `Infer<typeof schema>` is the TypeScript type it accepts. Objects are strict (unknown fields are
 * issues: a misspelt option must not be silently ignored).
 */
export interface Schema<T> {
  /** Human description used in messages, e.g. `integer >= 0`. */
  readonly description: string;
  /** Returns true when `value` conforms; otherwise pushes issues under `path`. */
  check(value: unknown, path: string, issues: PayloadIssue[]): value is T;
  /**
   * The same contract as JSON Schema (draft-07 subset, what fastify/ajv and OpenAPI read): the HTTP
   * route schemas derive from it, so the API, job payloads and settings files share one definition.
   * Cross-field rules of `s.refine` are not expressible here and run in `check` only.
   */
  readonly json: JsonSchema;
}

/** A JSON Schema object (the subset the DSL emits). */
export type JsonSchema = Record<string, unknown>;

/** Marks an object field as optional. */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends OptionalSchema<unknown> ? K : never }[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type InferObject<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> }
>;

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}...` : value}"`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}

function fail(issues: PayloadIssue[], path: string, expected: string, value: unknown): false {
  issues.push({ path, message: `must be ${expected}, got ${typeName(value)}` });
  return false;
}

function make<T>(description: string, check: (value: unknown, path: string, issues: PayloadIssue[]) => boolean, json: JsonSchema): Schema<T> {
  return { description, check: check as Schema<T>['check'], json };
}

export interface StringOptions {
  minLength?: number;
  /** Default 1024: payload strings are ids and references, not documents. */
  maxLength?: number;
  pattern?: RegExp;
  /** Shown instead of the regex in messages. */
  patternName?: string;
}

export interface NumberOptions {
  min?: number;
  max?: number;
  /** Strict lower bound. */
  greaterThan?: number;
  /** Strict upper bound. */
  lessThan?: number;
}

export const s = {
  string(options: StringOptions = {}): Schema<string> {
    const { minLength = 1, maxLength = 1024, pattern, patternName } = options;
    const description = pattern ? (patternName ?? `a string matching ${pattern}`) : minLength > 0 ? 'a non-empty string' : 'a string';
    return make(description, (value, path, issues) => {
      if (typeof value !== 'string') return fail(issues, path, description, value);
      if (value.length < minLength || value.length > maxLength) {
        issues.push({ path, message: `must be ${minLength}..${maxLength} characters long, got ${value.length}` });
        return false;
      }
      if (pattern && !pattern.test(value)) return fail(issues, path, description, value);
      return true;
    }, { type: 'string', minLength, maxLength, ...(pattern ? { pattern: pattern.source } : {}) });
  },

  int(options: NumberOptions = {}): Schema<number> {
    return numberSchema(true, options);
  },

  number(options: NumberOptions = {}): Schema<number> {
    return numberSchema(false, options);
  },

  boolean(): Schema<boolean> {
    return make('a boolean', (value, path, issues) => typeof value === 'boolean' || fail(issues, path, 'a boolean', value), { type: 'boolean' });
  },

  /** One of the given primitive values. */
  literal<const T extends string | number | boolean>(...values: T[]): Schema<T> {
    const description = values.length === 1 ? JSON.stringify(values[0]) : `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
    return make(description, (value, path, issues) => values.includes(value as T) || fail(issues, path, description, value), { enum: values });
  },

  array<T>(item: Schema<T>, options: { minLength?: number; maxLength?: number } = {}): Schema<T[]> {
    const { minLength = 0, maxLength = 10_000 } = options;
    const description = `an array of ${item.description}`;
    return make(description, (value, path, issues) => {
      if (!Array.isArray(value)) return fail(issues, path, description, value);
      if (value.length < minLength || value.length > maxLength) {
        issues.push({ path, message: `must hold ${minLength}..${maxLength} items, got ${value.length}` });
        return false;
      }
      const before = issues.length;
      for (let i = 0; i < value.length && issues.length - before < 5; i++) item.check(value[i], `${path}[${i}]`, issues);
      return issues.length === before;
    }, { type: 'array', items: item.json, minItems: minLength, maxItems: maxLength });
  },

  /** A strict object: every non-optional field present, no unknown fields. */
  object<S extends Shape>(shape: S): Schema<InferObject<S>> {
    const description = 'an object';
    return make(description, (value, path, issues) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) return fail(issues, path, description, value);
      const before = issues.length;
      const record = value as Record<string, unknown>;
      for (const [key, schema] of Object.entries(shape)) {
        const field = record[key];
        if (field === undefined) {
          if (!(schema as Partial<OptionalSchema<unknown>>).optional) issues.push({ path: `${path}.${key}`, message: `is required (${schema.description})` });
          continue;
        }
        schema.check(field, `${path}.${key}`, issues);
      }
      for (const key of Object.keys(record)) {
        if (!Object.hasOwn(shape, key)) issues.push({ path: `${path}.${key}`, message: `is not a known field (known: ${Object.keys(shape).join(', ')})` });
      }
      return issues.length === before;
    }, {
      type: 'object',
      properties: Object.fromEntries(Object.entries(shape).map(([key, schema]) => [key, schema.json])),
      required: Object.entries(shape).filter(([, schema]) => !(schema as Partial<OptionalSchema<unknown>>).optional).map(([key]) => key),
      additionalProperties: false,
    });
  },

  /** String-keyed map with values of one schema (e.g. hyper-parameters). */
  record<T>(value: Schema<T>, options: { maxKeys?: number } = {}): Schema<Record<string, T>> {
    const { maxKeys = 256 } = options;
    const description = `an object of ${value.description}`;
    return make(description, (input, path, issues) => {
      if (typeof input !== 'object' || input === null || Array.isArray(input) || ArrayBuffer.isView(input)) return fail(issues, path, description, input);
      const entries = Object.entries(input);
      if (entries.length > maxKeys) {
        issues.push({ path, message: `must have at most ${maxKeys} keys, got ${entries.length}` });
        return false;
      }
      const before = issues.length;
      for (const [key, item] of entries) value.check(item, `${path}.${key}`, issues);
      return issues.length === before;
    }, { type: 'object', additionalProperties: value.json, maxProperties: maxKeys });
  },

  /** The first alternative that accepts the value; issues of the closest miss otherwise. */
  anyOf<T extends Schema<unknown>[]>(...alternatives: T): Schema<Infer<T[number]>> {
    const description = alternatives.map((a) => a.description).join(' or ');
    return make(description, (value, path, issues) => {
      for (const alternative of alternatives) if (alternative.check(value, path, [])) return true;
      return fail(issues, path, description, value);
    }, { anyOf: alternatives.map((a) => a.json) });
  },

  /** Objects told apart by a string field (e.g. `type`), validated by the matching schema. */
  tagged<K extends string, M extends Record<string, Schema<object>>>(tag: K, variants: M): Schema<Infer<M[keyof M]>> {
    const names = Object.keys(variants);
    const description = `an object with ${tag} ${names.map((n) => JSON.stringify(n)).join(' | ')}`;
    return make(description, (value, path, issues) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(issues, path, description, value);
      const name = (value as Record<string, unknown>)[tag];
      if (typeof name !== 'string' || !Object.hasOwn(variants, name)) {
        return fail(issues, `${path}.${tag}`, `one of ${names.map((n) => JSON.stringify(n)).join(', ')}`, name);
      }
      return variants[name].check(value, path, issues);
    }, { oneOf: Object.values(variants).map((v) => v.json) });
  },

  optional<T>(schema: Schema<T>): OptionalSchema<T> {
    return { ...schema, check: schema.check as OptionalSchema<T>['check'], optional: true };
  },

  /** Adds a cross-field rule; `rule` returns issues (path relative to the value) or nothing. */
  refine<T>(schema: Schema<T>, rule: (value: T) => PayloadIssue[] | undefined): Schema<T> {
    return make(schema.description, (value, path, issues) => {
      if (!schema.check(value, path, issues)) return false;
      const problems = rule(value) ?? [];
      for (const problem of problems) issues.push({ path: path + problem.path, message: problem.message });
      return problems.length === 0;
    }, schema.json);
  },

  /** The schema with a human description in its JSON Schema (shown in /openapi.json). */
  describe<S extends Schema<unknown>>(schema: S, description: string): S {
    return { ...schema, json: { ...schema.json, description } };
  },
};

function numberSchema(integer: boolean, { min, max, greaterThan, lessThan }: NumberOptions): Schema<number> {
  const bounds = [
    greaterThan !== undefined ? `> ${greaterThan}` : min !== undefined ? `>= ${min}` : '',
    lessThan !== undefined ? `< ${lessThan}` : max !== undefined ? `<= ${max}` : '',
  ].filter(Boolean);
  const description = `${integer ? 'an integer' : 'a finite number'}${bounds.length ? ` ${bounds.join(' and ')}` : ''}`;
  return make(description, (value, path, issues) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) return fail(issues, path, description, value);
    if ((min !== undefined && value < min) || (max !== undefined && value > max) || (greaterThan !== undefined && value <= greaterThan) || (lessThan !== undefined && value >= lessThan)) {
      return fail(issues, path, description, value);
    }
    return true;
  }, {
    type: integer ? 'integer' : 'number',
    ...(min !== undefined ? { minimum: min } : {}),
    ...(max !== undefined ? { maximum: max } : {}),
    ...(greaterThan !== undefined ? { exclusiveMinimum: greaterThan } : {}),
    ...(lessThan !== undefined ? { exclusiveMaximum: lessThan } : {}),
  });
}
