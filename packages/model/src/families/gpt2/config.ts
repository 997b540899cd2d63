import type { ModelConfig } from '../types.js';
import { ConfigFields } from '../configFields.js';

export interface Gpt2Config extends ModelConfig {
  modelType: 'gpt2';
  /** HF `activation_function`; this build implements "gelu_new" (GPT-2's tanh approximation). */
  activation: 'gelu_new';
}

/** HF GPT2Config: `n_*` keys with the generic `attribute_map` aliases. */
export function parseGpt2Config(raw: Record<string, unknown>, where: string): Gpt2Config {
  const f = new ConfigFields(raw, where);
  const vocabSize = f.positiveInt('vocab_size');
  const maxPositions = f.positiveInt('n_positions', 'max_position_embeddings');
  const hiddenSize = f.positiveInt('n_embd', 'hidden_size');
  const nLayer = f.positiveInt('n_layer', 'num_hidden_layers');
  const nHead = f.positiveInt('n_head', 'num_attention_heads');
  if (hiddenSize % nHead !== 0) {
    throw f.fail('n_embd', `(${hiddenSize}) is not divisible by n_head (${nHead}); attention splits n_embd evenly across heads. Fix one of them.`);
  }
  return {
    modelType: 'gpt2',
    vocabSize,
    nLayer,
    hiddenSize,
    nHead,
    nKvHead: nHead,
    headDim: hiddenSize / nHead,
    intermediateSize: f.optionalPositiveInt('n_inner', 4 * hiddenSize),
    maxPositions,
    normEps: f.positiveNumber('layer_norm_epsilon', 1e-5),
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    activation: f.oneOf('activation_function', 'gelu_new', ['gelu_new'] as const),
    raw,
  };
}
