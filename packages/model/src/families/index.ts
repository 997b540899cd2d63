import { asConfigObject, CheckpointError, readConfigJson } from '@scaleot/checkpoint';
import { gpt2Family } from './gpt2/index.js';
import { llamaFamily } from './llama/index.js';
import { optFamily } from './opt/index.js';
import type { AnyFamily, ModelConfig, ModelFamily } from './types.js';

/**
 * Every family this build runs, keyed by HF `model_type` (transformers.js style). Adding a family is
 * one folder under `families/` and one entry here.
 */
const FAMILIES: ReadonlyArray<ModelFamily<any>> = [gpt2Family, optFamily, llamaFamily]; // eslint-disable-line @typescript-eslint/no-explicit-any

const BY_MODEL_TYPE = new Map<string, AnyFamily>(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f as AnyFamily] as const)));

/** The `model_type` values this build reads. */
export function supportedModelTypes(): string[] {
  return [...BY_MODEL_TYPE.keys()];
}

/** The family of a parsed config (or of a `model_type`). */
export function familyOf(config: ModelConfig | string): AnyFamily {
  const type = typeof config === 'string' ? config : config.modelType;
  const family = BY_MODEL_TYPE.get(type);
  if (!family) {
    throw new CheckpointError('BAD_CONFIG', 'config.json', `config field "model_type" is ${JSON.stringify(type)}; supported model types: ${supportedModelTypes().join(', ')}.`, { tensor: 'model_type' });
  }
  return family;
}

/** HF config.json content → the normalised config of its family; BAD_CONFIG naming `where` and the key. */
export function parseModelConfig(raw: unknown, where: string): ModelConfig {
  const record = asConfigObject(raw, where);
  const type = record.model_type;
  const family = typeof type === 'string' ? BY_MODEL_TYPE.get(type) : undefined;
  if (!family) {
    throw new CheckpointError(
      'BAD_CONFIG',
      where,
      `config field "model_type" is ${JSON.stringify(type)}; supported model types: ${supportedModelTypes().join(', ')}. Use a checkpoint of a supported architecture.`,
      { tensor: 'model_type' },
    );
  }
  return family.parseConfig(record, where);
}

/** Reads and normalises `<dir>/config.json`. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const { raw, file } = await readConfigJson(dir);
  return parseModelConfig(raw, file);
}

/** Every parameter of a model of this config, canonical names and shapes, in module order. */
export function expectedParameters(config: ModelConfig) {
  return familyOf(config).expectedParameters(config);
}
