import { CheckpointError } from './CheckpointError.js';
import { isSupportedDType } from './dtypes.js';
import type { ParameterSpec } from './modelTypes.js';

export interface StoredTensor {
  name: string;
  shape: readonly number[];
  dtype: string;
  /** The file the tensor is (or will be) stored in, named in errors. */
  file: string;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** How a model family names its tensors, as far as validation needs it (the family map lives in @scaleot/model). */
export interface TensorNaming {
  /** The canonical name of a stored one (e.g. adds the prefix that bare-model files omit). */
  canonicalName(stored: string): string;
  /** Non-parameter buffers HF may store (ignored). */
  isBuffer(canonical: string): boolean;
  /** `[head, embedding]` pairs of a tied head: the head is optional, and checked against the embedding's shape when stored. */
  readonly tiedKeys: ReadonlyArray<readonly [string, string]>;
}

/**
 * Checks stored tensors against the parameters a config implies (`specs`, from the model family): all
 * present (either prefix form), right shapes, float dtypes, nothing extra. Buffers are ignored; a tied
 * head is optional but checked when present. `where` names the checkpoint in MISSING/UNEXPECTED errors;
 * `described` summarises the config for the message. Returns canonical name → stored name.
 */
export function validateParameters(specs: ParameterSpec[], naming: TensorNaming, tensors: Iterable<StoredTensor>, where: string, described = 'config.json'): Map<string, string> {
  const byCanonical = new Map<string, StoredTensor>();
  for (const t of tensors) {
    const canonical = naming.canonicalName(t.name);
    if (naming.isBuffer(canonical)) continue;
    const other = byCanonical.get(canonical);
    if (other !== undefined) {
      throw new CheckpointError(
        'DUPLICATE_TENSOR',
        t.file,
        `tensors "${other.name}" and "${t.name}" are the same parameter ("${canonical}") with and without the prefix; keep one.`,
        { tensor: t.name },
      );
    }
    byCanonical.set(canonical, t);
  }
  specs = [...specs];
  for (const [head, embedding] of naming.tiedKeys) {
    const embeddingSpec = specs.find((s) => s.name === embedding);
    if (embeddingSpec && !specs.some((s) => s.name === head) && byCanonical.has(head)) specs.push({ name: head, shape: [...embeddingSpec.shape] });
  }
  const missing = specs.filter((s) => !byCanonical.has(s.name));
  if (missing.length > 0) {
    const list = missing
      .slice(0, 5)
      .map((s) => `"${s.name}" [${s.shape.join(', ')}]`)
      .join(', ');
    throw new CheckpointError(
      'MISSING_TENSOR',
      where,
      `lacks ${missing.length} of the ${specs.length} parameters the config (${described}) expects: ${list}${missing.length > 5 ? ', …' : ''}. The weights do not match config.json; use the config the weights were saved with.`,
      { tensor: missing[0].name },
    );
  }
  const known = new Set(specs.map((s) => s.name));
  const extra = [...byCanonical.values()].filter((t) => !known.has(naming.canonicalName(t.name)));
  if (extra.length > 0) {
    throw new CheckpointError(
      'UNEXPECTED_TENSOR',
      extra[0].file,
      `holds ${extra.length} tensor(s) that a model of this config (${described}) does not have: ${extra
        .slice(0, 5)
        .map((t) => `"${t.name}"`)
        .join(', ')}${extra.length > 5 ? ', …' : ''}. The weights do not match config.json (more layers, another architecture?); use the config the weights were saved with.`,
      { tensor: extra[0].name },
    );
  }
  const result = new Map<string, string>();
  for (const spec of specs) {
    const t = byCanonical.get(spec.name)!;
    if (!sameShape(t.shape, spec.shape)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        t.file,
        `tensor "${t.name}" has shape [${t.shape.join(', ')}] but config.json implies [${spec.shape.join(', ')}]; the weights and config.json belong to different models.`,
        { tensor: t.name },
      );
    }
    if (!isSupportedDType(t.dtype) || t.dtype === 'I64') {
      throw new CheckpointError(
        'UNSUPPORTED_DTYPE',
        t.file,
        `parameter "${t.name}" is ${t.dtype}; parameters must be F32, F16 or BF16. Convert the weights.`,
        { tensor: t.name },
      );
    }
    result.set(spec.name, t.name);
  }
  return result;
}
