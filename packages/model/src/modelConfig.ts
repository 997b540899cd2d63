import { parseModelConfig } from './families/index.js';
import type { Gpt2Config } from './families/gpt2/config.js';

/** A GPT-2 config built from sizes (tests, tools), with `raw` in HF spelling so it saves as config.json. */
export function gpt2Config(p: { vocabSize: number; nPositions: number; nEmbd: number; nLayer: number; nHead: number; nInner?: number; layerNormEpsilon?: number }): Gpt2Config {
  const raw = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: p.vocabSize,
    n_positions: p.nPositions,
    n_embd: p.nEmbd,
    n_layer: p.nLayer,
    n_head: p.nHead,
    n_inner: p.nInner ?? null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: p.layerNormEpsilon ?? 1e-5,
    tie_word_embeddings: true,
    attn_pdrop: 0,
    embd_pdrop: 0,
    resid_pdrop: 0,
    dtype: 'float32',
  };
  return parseModelConfig(raw, 'gpt2Config') as Gpt2Config;
}
