import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import type { ParameterSpec } from './modelTypes.js';
import { gpt2CanonicalName, gpt2ExpectedParameters, gpt2IsBuffer, parseGPT2Config, type GPT2Config } from './models/gpt2.js';

/** Parsed HF configs, discriminated by `modelType`; OPT and LLaMA join this union. */
export type ModelConfig = GPT2Config;

interface Architecture {
  parse(raw: Record<string, unknown>, where: string): ModelConfig;
  expectedParameters(config: ModelConfig): ParameterSpec[];
  canonicalName(stored: string): string;
  isBuffer(canonical: string): boolean;
}

/** Keyed by HF `model_type`. */
const ARCHITECTURES: Record<string, Architecture> = {
  gpt2: {
    parse: parseGPT2Config,
    expectedParameters: gpt2ExpectedParameters,
    canonicalName: gpt2CanonicalName,
    isBuffer: gpt2IsBuffer,
  },
};

function architecture(modelType: string): Architecture {
  return ARCHITECTURES[modelType];
}

/** Parses HF config.json content; `where` names its source in errors. */
export function parseModelConfig(raw: unknown, where: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError('BAD_CONFIG', where, 'config is not a JSON object; it must be a Hugging Face config.json.');
  }
  const record = raw as Record<string, unknown>;
  const modelType = record.model_type;
  const supported = Object.keys(ARCHITECTURES).join(', ');
  if (typeof modelType !== 'string' || !Object.hasOwn(ARCHITECTURES, modelType)) {
    throw new CheckpointError(
      'BAD_CONFIG',
      where,
      `config field "model_type" is ${JSON.stringify(modelType)}; supported model types: ${supported}. Use a checkpoint of a supported architecture.`,
      { tensor: 'model_type' },
    );
  }
  return architecture(modelType).parse(record, where);
}

/** Reads and parses `<dir>/config.json`. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = join(resolve(dir), 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CheckpointError('NOT_A_CHECKPOINT', file, 'does not exist; a checkpoint directory needs config.json next to its weights (save_pretrained writes both).', { cause });
    }
    throw cause;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError('BAD_CONFIG', file, `is not valid JSON (${(cause as Error).message}); fix or re-export config.json.`, { cause });
  }
  return parseModelConfig(raw, file);
}

/** Every parameter a model of this config has, with canonical names and shapes, in module order. */
export function expectedParameters(config: ModelConfig): ParameterSpec[] {
  return architecture(config.modelType).expectedParameters(config);
}

/** The canonical name of a stored tensor name (adds the prefix the bare model omits). */
export function canonicalName(config: ModelConfig, stored: string): string {
  return architecture(config.modelType).canonicalName(stored);
}

/** Non-parameter buffers HF may store (e.g. GPT-2's causal mask), ignored by validation. */
export function isBufferName(config: ModelConfig, canonical: string): boolean {
  return architecture(config.modelType).isBuffer(canonical);
}
