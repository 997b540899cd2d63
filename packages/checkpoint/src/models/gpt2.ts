import { CheckpointError } from '../CheckpointError.js';
import type { ParameterSpec } from '../modelTypes.js';

export interface GPT2Config {
  modelType: 'gpt2';
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** MLP width; `n_inner: null` (HF's default) means 4 · nEmbd. */
  nInner: number;
  /** HF `activation_function`; default "gelu_new" (the tanh approximation). */
  activation: string;
  /** Default 1e-5. */
  layerNormEpsilon: number;
  /** Default true (HF's default): no lm_head.weight, the output projection is wte. */
  tieWordEmbeddings: boolean;
  /** The config.json content as read, for writing it back unchanged. */
  raw: Record<string, unknown>;
}

/** HF's attribute_map: the generic names GPT-2 configs may use instead. */
const ALIASES: ReadonlyArray<readonly [string, string]> = [
  ['n_embd', 'hidden_size'],
  ['n_positions', 'max_position_embeddings'],
  ['n_head', 'num_attention_heads'],
  ['n_layer', 'num_hidden_layers'],
];

function badConfig(where: string, field: string, message: string): CheckpointError {
  return new CheckpointError('BAD_CONFIG', where, `config field "${field}" ${message}`, { tensor: field });
}

function positiveInt(raw: Record<string, unknown>, where: string, field: string): number {
  const alias = ALIASES.find(([name]) => name === field)?.[1];
  const value = raw[field] ?? (alias ? raw[alias] : undefined);
  const named = alias ? `"${field}" (or "${alias}")` : `"${field}"`;
  if (value === undefined || value === null) {
    throw new CheckpointError('BAD_CONFIG', where, `config has no ${named}; add it as a positive integer.`, { tensor: field });
  }
  if (alias && raw[field] !== undefined && raw[alias] !== undefined && raw[field] !== raw[alias]) {
    throw badConfig(where, field, `is ${JSON.stringify(raw[field])} but its alias "${alias}" is ${JSON.stringify(raw[alias])}; keep one of them.`);
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw badConfig(where, field, `is ${JSON.stringify(value)}; it must be a positive integer.`);
  }
  return value;
}

export function parseGPT2Config(raw: Record<string, unknown>, where: string): GPT2Config {
  const vocabSize = positiveInt(raw, where, 'vocab_size');
  const nPositions = positiveInt(raw, where, 'n_positions');
  const nEmbd = positiveInt(raw, where, 'n_embd');
  const nLayer = positiveInt(raw, where, 'n_layer');
  const nHead = positiveInt(raw, where, 'n_head');
  if (nEmbd % nHead !== 0) {
    throw badConfig(where, 'n_embd', `(${nEmbd}) is not divisible by n_head (${nHead}); attention splits n_embd evenly across heads. Fix one of them.`);
  }
  const nInner = raw.n_inner === undefined || raw.n_inner === null ? 4 * nEmbd : positiveInt(raw, where, 'n_inner');
  const activation = raw.activation_function ?? 'gelu_new';
  if (typeof activation !== 'string' || activation === '') {
    throw badConfig(where, 'activation_function', `is ${JSON.stringify(activation)}; it must be an activation name such as "gelu_new".`);
  }
  const layerNormEpsilon = raw.layer_norm_epsilon ?? 1e-5;
  if (typeof layerNormEpsilon !== 'number' || !Number.isFinite(layerNormEpsilon) || layerNormEpsilon <= 0) {
    throw badConfig(where, 'layer_norm_epsilon', `is ${JSON.stringify(layerNormEpsilon)}; it must be a positive number such as 1e-5.`);
  }
  const tie = raw.tie_word_embeddings ?? true;
  if (typeof tie !== 'boolean') {
    throw badConfig(where, 'tie_word_embeddings', `is ${JSON.stringify(tie)}; it must be true or false.`);
  }
  return {
    modelType: 'gpt2',
    vocabSize,
    nPositions,
    nEmbd,
    nLayer,
    nHead,
    nInner,
    activation,
    layerNormEpsilon,
    tieWordEmbeddings: tie,
    raw,
  };
}

export function gpt2ExpectedParameters(c: GPT2Config): ParameterSpec[] {
  const d = c.nEmbd;
  const specs: ParameterSpec[] = [
    { name: 'transformer.wte.weight', shape: [c.vocabSize, d] },
    { name: 'transformer.wpe.weight', shape: [c.nPositions, d] },
  ];
  for (let block = 0; block < c.nLayer; block++) {
    const p = `transformer.h.${block}.`;
    // Conv1D weights are [in, out].
    const layer: Array<[string, number[]]> = [
      ['ln_1.weight', [d]],
      ['ln_1.bias', [d]],
      ['attn.c_attn.weight', [d, 3 * d]],
      ['attn.c_attn.bias', [3 * d]],
      ['attn.c_proj.weight', [d, d]],
      ['attn.c_proj.bias', [d]],
      ['ln_2.weight', [d]],
      ['ln_2.bias', [d]],
      ['mlp.c_fc.weight', [d, c.nInner]],
      ['mlp.c_fc.bias', [c.nInner]],
      ['mlp.c_proj.weight', [c.nInner, d]],
      ['mlp.c_proj.bias', [d]],
    ];
    for (const [suffix, shape] of layer) specs.push({ name: p + suffix, shape, block });
  }
  specs.push({ name: 'transformer.ln_f.weight', shape: [d] }, { name: 'transformer.ln_f.bias', shape: [d] });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, d] });
  return specs;
}

const BARE_PREFIXES = ['wte.', 'wpe.', 'h.', 'ln_f.'];

/** Files saved from the bare GPT2Model have no `transformer.` prefix. */
export function gpt2CanonicalName(stored: string): string {
  return BARE_PREFIXES.some((p) => stored.startsWith(p)) ? `transformer.${stored}` : stored;
}

/** HF registers the causal mask as buffers; older files store them, they are not parameters. */
export function gpt2IsBuffer(canonical: string): boolean {
  return /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(canonical);
}
