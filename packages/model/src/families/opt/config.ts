import { ConfigFields } from '../configFields.js';
import type { ModelConfig } from '../types.js';

/** MLP activations this build implements (HF `ACT2FN` names): exact erf GELU, GPT-2's tanh GELU, ReLU. */
export const OPT_ACTIVATIONS = ['relu', 'gelu', 'gelu_new'] as const;
export type OptActivation = (typeof OPT_ACTIVATIONS)[number];

export interface OptConfig extends ModelConfig {
  modelType: 'opt';
  /** Width of the token embedding and the head (`word_embed_proj_dim`, default hidden_size). */
  wordEmbedProjDim: number;
  /** project_in / project_out exist: wordEmbedProjDim ≠ hiddenSize. */
  projectEmbeddings: boolean;
  /** Pre-LN (true; OPT-125m and most sizes) or post-LN (`do_layer_norm_before`: false, OPT-350m). */
  doLayerNormBefore: boolean;
  /** `model.decoder.final_layer_norm` exists: pre-LN and not `_remove_final_layer_norm`. */
  finalLayerNorm: boolean;
  /** `activation_function`. */
  activation: OptActivation;
  /** Biases on the attention projections and fc1/fc2 (`enable_bias`). */
  enableBias: boolean;
}

/** HF OPTConfig. Rows of the position table: max_position_embeddings + 2 (HF's offset). */
export function parseOptConfig(raw: Record<string, unknown>, where: string): OptConfig {
  const f = new ConfigFields(raw, where);
  const vocabSize = f.positiveInt('vocab_size');
  const hiddenSize = f.positiveInt('hidden_size');
  const nLayer = f.positiveInt('num_hidden_layers');
  const nHead = f.positiveInt('num_attention_heads');
  if (hiddenSize % nHead !== 0) {
    throw f.fail('hidden_size', `(${hiddenSize}) is not divisible by num_attention_heads (${nHead}); OPT attention splits the width evenly across heads. Fix one of them.`);
  }
  if (!f.bool('layer_norm_elementwise_affine', true)) {
    throw f.fail('layer_norm_elementwise_affine', 'is false (LayerNorms without weight and bias); this build supports only affine LayerNorms (true, every released OPT).');
  }
  const wordEmbedProjDim = f.optionalPositiveInt('word_embed_proj_dim', hiddenSize);
  const doLayerNormBefore = f.bool('do_layer_norm_before', true);
  return {
    modelType: 'opt',
    vocabSize,
    nLayer,
    hiddenSize,
    nHead,
    nKvHead: nHead,
    headDim: hiddenSize / nHead,
    intermediateSize: f.positiveInt('ffn_dim'),
    maxPositions: f.positiveInt('max_position_embeddings'),
    // OPT's LayerNorms use torch's default eps; the config has no key for it.
    normEps: 1e-5,
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    wordEmbedProjDim,
    projectEmbeddings: wordEmbedProjDim !== hiddenSize,
    doLayerNormBefore,
    finalLayerNorm: doLayerNormBefore && !f.bool('_remove_final_layer_norm', false),
    activation: f.oneOf('activation_function', 'relu', OPT_ACTIVATIONS),
    enableBias: f.bool('enable_bias', true),
    raw,
  };
}
