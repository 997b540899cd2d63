/**
 * The typed model config. `@scaleot/checkpoint` owns the parser (`parseModelConfig`); this mirror of its
 * contract keeps the model package compiling on its own and is structurally identical to it.
 */
export interface Gpt2Config {
  modelType: 'gpt2';
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Width of the MLP hidden layer (`n_inner`, null in HF means 4·nEmbd: already resolved). */
  nInner: number;
  activation: string;
  layerNormEpsilon: number;
  tieWordEmbeddings: boolean;
  /** The original HF config.json object, written back unchanged (except dtype) on save. */
  raw: Record<string, unknown>;
}

export type ModelConfig = Gpt2Config;

/** A GPT-2 config for tests and tools; `raw` is synthesised in HF spelling. */
export function gpt2Config(p: { vocabSize: number; nPositions: number; nEmbd: number; nLayer: number; nHead: number; nInner?: number; layerNormEpsilon?: number }): Gpt2Config {
  const nInner = p.nInner ?? 4 * p.nEmbd;
  const layerNormEpsilon = p.layerNormEpsilon ?? 1e-5;
  return {
    modelType: 'gpt2',
    vocabSize: p.vocabSize,
    nPositions: p.nPositions,
    nEmbd: p.nEmbd,
    nLayer: p.nLayer,
    nHead: p.nHead,
    nInner,
    activation: 'gelu_new',
    layerNormEpsilon,
    tieWordEmbeddings: true,
    raw: {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: p.vocabSize,
      n_positions: p.nPositions,
      n_embd: p.nEmbd,
      n_layer: p.nLayer,
      n_head: p.nHead,
      n_inner: p.nInner ?? null,
      activation_function: 'gelu_new',
      layer_norm_epsilon: layerNormEpsilon,
      tie_word_embeddings: true,
      attn_pdrop: 0,
      embd_pdrop: 0,
      resid_pdrop: 0,
      dtype: 'float32',
    },
  };
}
