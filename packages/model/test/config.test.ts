import { describe, expect, it } from 'vitest';
import { CheckpointError } from '@scaleot/checkpoint';
import { expectedParameters, familyOf, parseModelConfig, type ModelConfig } from '@scaleot/model';
import { MICRO_CONFIG } from '../../checkpoint/test/helpers.js';

const canonicalName = (c: ModelConfig, stored: string) => familyOf(c).naming.canonicalName(stored);

function expectConfigError(raw: unknown, fragment: RegExp, where = '/models/x/config.json'): CheckpointError {
  let caught: unknown;
  try {
    parseModelConfig(raw, where);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  const err = caught as CheckpointError;
  expect(err.code).toBe('BAD_CONFIG');
  expect(err.file).toBe(where);
  expect(err.message).toContain(where);
  expect(err.message).toMatch(fragment);
  return err;
}

describe('parseModelConfig', () => {
  it('parses GPT-2 with defaults (n_inner null → 4·n_embd)', () => {
    const c = parseModelConfig(MICRO_CONFIG, 'x');
    expect(c).toMatchObject({ modelType: 'gpt2', vocabSize: 16, maxPositions: 8, hiddenSize: 8, nLayer: 2, nHead: 2, nKvHead: 2, headDim: 4, intermediateSize: 32, activation: 'gelu_new', normEps: 1e-5, tieWordEmbeddings: true });
    expect(c.raw).toBe(MICRO_CONFIG);
  });

  it('accepts the generic aliases', () => {
    const c = parseModelConfig({ model_type: 'gpt2', vocab_size: 10, hidden_size: 12, max_position_embeddings: 5, num_attention_heads: 3, num_hidden_layers: 1, n_inner: 7, tie_word_embeddings: false }, 'x');
    expect(c).toMatchObject({ hiddenSize: 12, maxPositions: 5, nHead: 3, nLayer: 1, intermediateSize: 7, tieWordEmbeddings: false });
  });

  it('rejects an unknown model_type, listing the supported ones', () => {
    expectConfigError({ ...MICRO_CONFIG, model_type: 'bert' }, /"bert".*supported model types: gpt2/);
    expectConfigError({ ...MICRO_CONFIG, model_type: undefined }, /model_type/);
    expectConfigError([1], /not a JSON object/);
  });

  it('rejects n_embd not divisible by n_head', () => {
    const err = expectConfigError({ ...MICRO_CONFIG, n_embd: 10, n_head: 4 }, /not divisible by n_head/);
    expect(err.tensor).toBe('n_embd');
  });

  it('rejects non-positive or non-integer sizes, missing fields and conflicting aliases', () => {
    expectConfigError({ ...MICRO_CONFIG, n_layer: 0 }, /"n_layer".*positive integer/);
    expectConfigError({ ...MICRO_CONFIG, vocab_size: 3.5 }, /"vocab_size"/);
    expectConfigError({ ...MICRO_CONFIG, n_head: '2' }, /"n_head"/);
    expectConfigError({ ...MICRO_CONFIG, n_positions: undefined }, /no "n_positions" \(or "max_position_embeddings"\)/);
    expectConfigError({ ...MICRO_CONFIG, hidden_size: 16 }, /alias "hidden_size"/);
    expectConfigError({ ...MICRO_CONFIG, layer_norm_epsilon: -1 }, /layer_norm_epsilon/);
    expectConfigError({ ...MICRO_CONFIG, tie_word_embeddings: 'yes' }, /tie_word_embeddings/);
  });
});

describe('expectedParameters / canonicalName', () => {
  it('lists GPT-2 parameters with Conv1D [in, out] shapes and block indices', () => {
    const specs = expectedParameters(parseModelConfig(MICRO_CONFIG, 'x'));
    expect(specs).toHaveLength(2 + 2 * 12 + 2);
    const byName = new Map(specs.map((s) => [s.name, s]));
    expect(byName.get('transformer.wte.weight')?.shape).toEqual([16, 8]);
    expect(byName.get('transformer.wpe.weight')?.shape).toEqual([8, 8]);
    expect(byName.get('transformer.h.1.attn.c_attn.weight')).toEqual({ name: 'transformer.h.1.attn.c_attn.weight', shape: [8, 24], block: 1 });
    expect(byName.get('transformer.h.0.mlp.c_fc.weight')?.shape).toEqual([8, 32]);
    expect(byName.get('transformer.h.0.mlp.c_proj.weight')?.shape).toEqual([32, 8]);
    expect(byName.get('transformer.ln_f.bias')?.block).toBeUndefined();
    expect(byName.has('lm_head.weight')).toBe(false);
    const untied = expectedParameters(parseModelConfig({ ...MICRO_CONFIG, tie_word_embeddings: false }, 'x'));
    expect(untied.at(-1)).toEqual({ name: 'lm_head.weight', shape: [16, 8] });
  });

  it('adds the transformer. prefix only where the bare model omitted it', () => {
    const c = parseModelConfig(MICRO_CONFIG, 'x');
    expect(canonicalName(c, 'h.0.ln_1.weight')).toBe('transformer.h.0.ln_1.weight');
    expect(canonicalName(c, 'wte.weight')).toBe('transformer.wte.weight');
    expect(canonicalName(c, 'ln_f.bias')).toBe('transformer.ln_f.bias');
    expect(canonicalName(c, 'transformer.wpe.weight')).toBe('transformer.wpe.weight');
    expect(canonicalName(c, 'lm_head.weight')).toBe('lm_head.weight');
  });
});
