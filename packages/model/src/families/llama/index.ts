import type { ParameterSpec } from '@scaleot/checkpoint';
import { blockNaming } from '../blockNaming.js';
import type { ModelFamily } from '../types.js';
import { parseLlamaConfig, type LlamaConfig, type LlamaModelType } from './config.js';
import { LlamaBlock } from './LlamaBlock.js';
import { LlamaStem } from './LlamaStem.js';

export { LlamaBlock, LlamaStem, type LlamaConfig, type LlamaModelType };

const naming = blockNaming({
  basePrefix: 'model.',
  layers: 'layers',
  bareStarts: ['embed_tokens.', 'layers.', 'norm.', 'rotary_emb.'],
  tiedKeys: [['lm_head.weight', 'model.embed_tokens.weight']],
  // Older transformers saved the rotary cache as a buffer (per layer, later on the model).
  buffers: /^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/,
});

/** LlamaForCausalLM (also Mistral and Qwen2 checkpoints): RMSNorm, rotary GQA attention, SwiGLU MLP, nn.Linear `[out, in]`. */
export const llamaFamily: ModelFamily<LlamaConfig> = {
  name: 'LLaMA',
  modelTypes: ['llama', 'mistral', 'qwen2'],
  parseConfig: parseLlamaConfig,
  naming,
  expectedParameters(c) {
    const d = c.hiddenSize;
    const qWidth = c.nHead * c.headDim;
    const kvWidth = c.nKvHead * c.headDim;
    const inner = c.intermediateSize;
    const specs: ParameterSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, d] }];
    for (let block = 0; block < c.nLayer; block++) {
      const p = `${naming.blockPrefix(block)}.`;
      const linear = (name: string, out: number, inp: number, bias: boolean): Array<[string, number[]]> => (bias ? [[`${name}.weight`, [out, inp]], [`${name}.bias`, [out]]] : [[`${name}.weight`, [out, inp]]]);
      const layer: Array<[string, number[]]> = [
        ...linear('self_attn.q_proj', qWidth, d, c.qkvBias),
        ...linear('self_attn.k_proj', kvWidth, d, c.qkvBias),
        ...linear('self_attn.v_proj', kvWidth, d, c.qkvBias),
        ...linear('self_attn.o_proj', d, qWidth, c.outputBias),
        ...linear('mlp.gate_proj', inner, d, c.mlpBias),
        ...linear('mlp.up_proj', inner, d, c.mlpBias),
        ...linear('mlp.down_proj', d, inner, c.mlpBias),
        ['input_layernorm.weight', [d]],
        ['post_attention_layernorm.weight', [d]],
      ];
      for (const [suffix, shape] of layer) specs.push({ name: p + suffix, shape, block });
    }
    specs.push({ name: 'model.norm.weight', shape: [d] });
    if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, d] });
    return specs;
  },
  createStem: (config, params) => new LlamaStem(config, params),
  createBlock: (index, config, params) => new LlamaBlock(index, config, params),
  linearTargets: () => [
    { name: 'self_attn.q_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.k_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.v_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.o_proj', layout: 'out_in', part: 'attention' },
    { name: 'mlp.gate_proj', layout: 'out_in', part: 'mlp' },
    { name: 'mlp.up_proj', layout: 'out_in', part: 'mlp' },
    { name: 'mlp.down_proj', layout: 'out_in', part: 'mlp' },
  ],
};
