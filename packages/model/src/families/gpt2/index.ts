import type { ParameterSpec } from '@scaleot/checkpoint';
import { blockNaming } from '../blockNaming.js';
import type { ModelFamily } from '../types.js';
import { parseGpt2Config, type Gpt2Config } from './config.js';
import { Gpt2Block } from './Gpt2Block.js';
import { Gpt2Stem } from './Gpt2Stem.js';

export { Gpt2Block, Gpt2Stem, type Gpt2Config };

const naming = blockNaming({
  basePrefix: 'transformer.',
  layers: 'h',
  bareStarts: ['wte.', 'wpe.', 'h.', 'ln_f.'],
  tiedKeys: [['lm_head.weight', 'transformer.wte.weight']],
  // HF registers the causal mask as buffers; older files store them.
  buffers: /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/,
});

/** GPT2LMHeadModel: learned positions, pre-LN, gelu_new MLP, Conv1D `[in, out]` weights. */
export const gpt2Family: ModelFamily<Gpt2Config> = {
  name: 'GPT-2',
  modelTypes: ['gpt2'],
  parseConfig: parseGpt2Config,
  naming,
  expectedParameters(c) {
    const d = c.hiddenSize;
    const specs: ParameterSpec[] = [
      { name: 'transformer.wte.weight', shape: [c.vocabSize, d] },
      { name: 'transformer.wpe.weight', shape: [c.maxPositions, d] },
    ];
    for (let block = 0; block < c.nLayer; block++) {
      const p = `${naming.blockPrefix(block)}.`;
      const layer: Array<[string, number[]]> = [
        ['ln_1.weight', [d]],
        ['ln_1.bias', [d]],
        ['attn.c_attn.weight', [d, 3 * d]],
        ['attn.c_attn.bias', [3 * d]],
        ['attn.c_proj.weight', [d, d]],
        ['attn.c_proj.bias', [d]],
        ['ln_2.weight', [d]],
        ['ln_2.bias', [d]],
        ['mlp.c_fc.weight', [d, c.intermediateSize]],
        ['mlp.c_fc.bias', [c.intermediateSize]],
        ['mlp.c_proj.weight', [c.intermediateSize, d]],
        ['mlp.c_proj.bias', [d]],
      ];
      for (const [suffix, shape] of layer) specs.push({ name: p + suffix, shape, block });
    }
    specs.push({ name: 'transformer.ln_f.weight', shape: [d] }, { name: 'transformer.ln_f.bias', shape: [d] });
    if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, d] });
    return specs;
  },
  createStem: (config, params) => new Gpt2Stem(config, params),
  createBlock: (index, config, params) => new Gpt2Block(index, config, params),
  linearTargets: () => [
    { name: 'attn.c_attn', layout: 'in_out', part: 'attention' },
    { name: 'attn.c_proj', layout: 'in_out', part: 'attention' },
    { name: 'mlp.c_fc', layout: 'in_out', part: 'mlp' },
    { name: 'mlp.c_proj', layout: 'in_out', part: 'mlp' },
  ],
};
