import type { ParameterSpec } from '@scaleot/checkpoint';
import { blockNaming } from '../blockNaming.js';
import type { ModelFamily } from '../types.js';
import { parseOptConfig, type OptActivation, type OptConfig } from './config.js';
import { OptBlock } from './OptBlock.js';
import { OPT_POSITION_OFFSET, OptStem } from './OptStem.js';

export { OptBlock, OptStem, type OptConfig, type OptActivation };

const naming = blockNaming({
  basePrefix: 'model.',
  layers: 'decoder.layers',
  // OPTModel (no head) saves everything under `decoder.`.
  bareStarts: ['decoder.'],
  tiedKeys: [['lm_head.weight', 'model.decoder.embed_tokens.weight']],
});

/** OPTForCausalLM: learned positions (offset 2), pre- or post-LN, ReLU MLP, nn.Linear `[out, in]`. */
export const optFamily: ModelFamily<OptConfig> = {
  name: 'OPT',
  modelTypes: ['opt'],
  parseConfig: parseOptConfig,
  naming,
  expectedParameters(c) {
    const d = c.hiddenSize;
    const w = c.wordEmbedProjDim;
    const ffn = c.intermediateSize;
    const specs: ParameterSpec[] = [
      { name: 'model.decoder.embed_tokens.weight', shape: [c.vocabSize, w] },
      { name: 'model.decoder.embed_positions.weight', shape: [c.maxPositions + OPT_POSITION_OFFSET, d] },
    ];
    if (c.projectEmbeddings) specs.push({ name: 'model.decoder.project_out.weight', shape: [w, d] }, { name: 'model.decoder.project_in.weight', shape: [d, w] });
    if (c.finalLayerNorm) specs.push({ name: 'model.decoder.final_layer_norm.weight', shape: [d] }, { name: 'model.decoder.final_layer_norm.bias', shape: [d] });
    for (let block = 0; block < c.nLayer; block++) {
      const p = `${naming.blockPrefix(block)}.`;
      const linear = (name: string, out: number, inp: number): Array<[string, number[]]> => (c.enableBias ? [[`${name}.weight`, [out, inp]], [`${name}.bias`, [out]]] : [[`${name}.weight`, [out, inp]]]);
      const layer: Array<[string, number[]]> = [
        ...linear('self_attn.k_proj', d, d),
        ...linear('self_attn.v_proj', d, d),
        ...linear('self_attn.q_proj', d, d),
        ...linear('self_attn.out_proj', d, d),
        ['self_attn_layer_norm.weight', [d]],
        ['self_attn_layer_norm.bias', [d]],
        ...linear('fc1', ffn, d),
        ...linear('fc2', d, ffn),
        ['final_layer_norm.weight', [d]],
        ['final_layer_norm.bias', [d]],
      ];
      for (const [suffix, shape] of layer) specs.push({ name: p + suffix, shape, block });
    }
    if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, w] });
    return specs;
  },
  createStem: (config, params) => new OptStem(config, params),
  createBlock: (index, config, params) => new OptBlock(index, config, params),
  linearTargets: () => [
    { name: 'self_attn.k_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.v_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.q_proj', layout: 'out_in', part: 'attention' },
    { name: 'self_attn.out_proj', layout: 'out_in', part: 'attention' },
    { name: 'fc1', layout: 'out_in', part: 'mlp' },
    { name: 'fc2', layout: 'out_in', part: 'mlp' },
  ],
};
