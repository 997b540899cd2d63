import { writeCheckpoint } from '@scaleot/checkpoint';
import { ModelError } from './ModelError.js';
import type { CausalLM, SaveOptions } from './types.js';

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/**
 * Writes an HF checkpoint under the original canonical names (a tied head is not stored, as
 * `save_pretrained` does). config.json is the original raw config with its dtype updated, in the
 * spelling it had (`dtype` and/or `torch_dtype`).
 */
export async function saveModel(model: CausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const named = model.namedWeights();
  const specs = model.family.expectedParameters(model.config);
  const known = new Set(specs.map((s) => s.name));
  const nonHf = [...named.keys()].filter((n) => !known.has(n));
  if (nonHf.length > 0) {
    throw new ModelError('NOT_AN_HF_MODEL', `block-list entries own non-HF weights (${nonHf.slice(0, 3).join(', ')}): an HF checkpoint cannot hold them; save those modules separately`, { where: dir });
  }
  const tensors = [];
  for (const [name, v] of named) {
    // F16/BF16 rounding (nearest even) happens in the writer, one tensor at a time.
    tensors.push({ name, dtype, shape: v.shape.slice(), data: (await v.data()) as Float32Array });
  }
  const raw: Record<string, unknown> = { ...model.config.raw };
  if ('torch_dtype' in raw || !('dtype' in raw)) raw.torch_dtype = TORCH_DTYPE[dtype];
  if ('dtype' in raw) raw.dtype = TORCH_DTYPE[dtype];
  await writeCheckpoint(dir, tensors, { config: raw, maxShardBytes: opts.maxShardBytes, extraFiles: opts.extraFiles, parameters: { specs, naming: model.family.naming } });
}
