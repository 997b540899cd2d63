import { familyOf } from './families/index.js';
import type { ModelConfig } from './families/types.js';
import type { WeightMap } from './ParamFactory.js';
import { TransformerLM, type CreateModelOptions } from './TransformerLM.js';
import type { CausalLM } from './types.js';

export type { CreateModelOptions };

/**
 * Builds a causal LM for `config.modelType` through the family map. Weights, when given, are keyed by
 * HF name (canonical, or as a bare-model file stores them); without them the model is randomly
 * initialised (seeded by `opts.seed`).
 */
export function createModel(config: ModelConfig, weights?: WeightMap, opts: CreateModelOptions = {}): CausalLM {
  const family = familyOf(config);
  let canonical = weights;
  if (weights && [...weights.keys()].some((k) => family.naming.canonicalName(k) !== k)) {
    canonical = new Map([...weights].map(([k, v]) => [family.naming.canonicalName(k), v]));
  }
  return new TransformerLM(family, config, canonical, opts);
}
