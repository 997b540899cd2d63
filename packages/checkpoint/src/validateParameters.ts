import { CheckpointError } from './CheckpointError.js';
import { isSupportedDType } from './dtypes.js';
import { canonicalName, expectedParameters, isBufferName, type ModelConfig } from './modelConfig.js';

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

function summary(config: ModelConfig): string {
  const { raw: _raw, ...rest } = config;
  return JSON.stringify(rest);
}

/**
 * Checks stored tensors against the parameters `config` implies: all present (either prefix
 * form), right shapes, float dtypes. Buffers are ignored, extra tensors allowed, a tied lm_head is
 * optional but checked when present. `where` names the checkpoint in MISSING_TENSOR errors.
 * Returns canonical name → stored name.
 */
export function validateParameters(config: ModelConfig, tensors: Iterable<StoredTensor>, where: string): Map<string, string> {
  const byCanonical = new Map<string, StoredTensor>();
  for (const t of tensors) {
    const canonical = canonicalName(config, t.name);
    if (isBufferName(config, canonical)) continue;
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
  const specs = expectedParameters(config);
  if (!specs.some((s) => s.name === 'lm_head.weight') && byCanonical.has('lm_head.weight')) {
    specs.push({ name: 'lm_head.weight', shape: [...specs[0].shape] });
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
      `lacks ${missing.length} of the ${specs.length} parameters the config (${summary(config)}) expects: ${list}${missing.length > 5 ? ', …' : ''}. The weights do not match config.json; use the config the weights were saved with.`,
      { tensor: missing[0].name },
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
