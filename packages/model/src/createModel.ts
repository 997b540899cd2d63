import { Gpt2LMHeadModel, type Gpt2ModelOptions } from './Gpt2LMHeadModel.js';
import { ModelError } from './ModelError.js';
import type { ModelConfig } from './modelConfig.js';
import type { WeightMap } from './ParamFactory.js';
import type { CausalLM } from './types.js';

export type CreateModelOptions = Gpt2ModelOptions;

/**
 * Builds a causal LM for `config.modelType` (transformers.js-style factory). Weights, when given, are
 * keyed by canonical HF name (`transformer.h.0.attn.c_attn.weight`; the `transformer.` prefix may be
 * missing); without them the model is randomly initialised (HF init, std 0.02, seeded by `opts.seed`).
 */
export function createModel(config: ModelConfig, weights?: WeightMap, opts: CreateModelOptions = {}): CausalLM {
  const type = (config as { modelType: string }).modelType;
  switch (type) {
    case 'gpt2':
      return new Gpt2LMHeadModel(config, weights, opts);
    default:
      throw new ModelError('UNSUPPORTED_MODEL_TYPE', `model_type "${type}" has no implementation yet (supported: gpt2)`, { where: 'config.json' });
  }
}
