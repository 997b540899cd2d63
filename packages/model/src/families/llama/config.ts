import type { RopeScaling, RotaryConfig } from '../../rotary.js';
import { ConfigFields } from '../configFields.js';
import type { ModelConfig } from '../types.js';

/** The LLaMA-shaped model types this family reads: Mistral is LLaMA (+ sliding window), Qwen2 adds q/k/v biases. */
export type LlamaModelType = 'llama' | 'mistral' | 'qwen2';

export interface LlamaConfig extends ModelConfig {
  modelType: LlamaModelType;
  /** Biases on q_proj, k_proj, v_proj (`attention_bias`; always for Qwen2). */
  qkvBias: boolean;
  /** Bias on o_proj (`attention_bias`; never for Qwen2). */
  outputBias: boolean;
  /** Biases on gate_proj, up_proj, down_proj (`mlp_bias`). */
  mlpBias: boolean;
  /** Rotary embedding: `rope_theta`, `rope_scaling`, head_dim. */
  rope: RotaryConfig;
}

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

function ropeScaling(f: ConfigFields, maxPositions: number): RopeScaling {
  const raw = f.raw.rope_scaling;
  if (raw === undefined || raw === null) return { type: 'default' };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw f.fail('rope_scaling', `is ${JSON.stringify(raw)}; it must be null or an object such as {"rope_type": "linear", "factor": 2.0}.`);
  const s = raw as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  if (typeof type !== 'string' || !(ROPE_TYPES as readonly string[]).includes(type)) {
    throw f.fail(
      'rope_scaling',
      `has type ${JSON.stringify(type)} (key "rope_type" or "type"); this build supports ${ROPE_TYPES.map((t) => `"${t}"`).join(', ')}. Use a checkpoint with one of them or drop rope_scaling.`,
    );
  }
  const num = (key: string, min: number): number => {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw f.fail('rope_scaling', `has ${key} ${JSON.stringify(v)}; rope type "${type}" needs a number ≥ ${min} there.`);
    }
    return v;
  };
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: num('factor', 1) };
    case 'dynamic':
      return { type: 'dynamic', factor: num('factor', 1) };
    default: {
      const lowFreqFactor = num('low_freq_factor', Number.MIN_VALUE);
      const highFreqFactor = num('high_freq_factor', Number.MIN_VALUE);
      if (highFreqFactor <= lowFreqFactor) throw f.fail('rope_scaling', `has high_freq_factor ${highFreqFactor} ≤ low_freq_factor ${lowFreqFactor}; llama3 needs high > low.`);
      const originalMaxPositions = num('original_max_position_embeddings', 1);
      if (originalMaxPositions > maxPositions) {
        throw f.fail('rope_scaling', `has original_max_position_embeddings ${originalMaxPositions} > max_position_embeddings ${maxPositions}; llama3 scaling extends a shorter original context.`);
      }
      return { type: 'llama3', factor: num('factor', 1), lowFreqFactor, highFreqFactor, originalMaxPositions };
    }
  }
}

/** Sliding-window attention is not implemented: accept it only where it never masks anything. */
function checkSlidingWindow(f: ConfigFields, type: LlamaModelType, maxPositions: number): void {
  if (type === 'llama') return;
  if (type === 'qwen2' && f.raw.use_sliding_window !== true) return;
  const window = f.raw.sliding_window;
  if (window === undefined || window === null) return;
  if (typeof window !== 'number' || !Number.isSafeInteger(window) || window < maxPositions) {
    throw f.fail(
      'sliding_window',
      `is ${JSON.stringify(window)}; this build has no sliding-window attention, so it accepts only null or a window ≥ max_position_embeddings (${maxPositions}), where it masks nothing.`,
    );
  }
}

/** HF LlamaConfig (and MistralConfig / Qwen2Config, which read the same keys). */
export function parseLlamaConfig(raw: Record<string, unknown>, where: string): LlamaConfig {
  const f = new ConfigFields(raw, where);
  const modelType = raw.model_type as LlamaModelType;
  const vocabSize = f.positiveInt('vocab_size');
  const hiddenSize = f.positiveInt('hidden_size');
  const nLayer = f.positiveInt('num_hidden_layers');
  const nHead = f.positiveInt('num_attention_heads');
  const kvHeads = f.optionalPositiveInt('num_key_value_heads', nHead);
  const maxPositions = f.positiveInt('max_position_embeddings');
  const { nKvHead, headDim } = f.attentionShape({ field: 'hidden_size', value: hiddenSize }, { field: 'num_attention_heads', value: nHead }, { field: 'num_key_value_heads', value: kvHeads });
  if (headDim % 2 !== 0) throw f.fail('head_dim', `is ${headDim}; rotary embeddings rotate pairs of half-head coordinates, so it must be even.`);
  f.oneOf('hidden_act', 'silu', ['silu'] as const);
  const partial = raw.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) throw f.fail('partial_rotary_factor', `is ${JSON.stringify(partial)}; this build rotates whole heads (1.0).`);
  checkSlidingWindow(f, modelType, maxPositions);
  const attentionBias = f.bool('attention_bias', false);
  return {
    modelType,
    vocabSize,
    nLayer,
    hiddenSize,
    nHead,
    nKvHead,
    headDim,
    intermediateSize: f.positiveInt('intermediate_size'),
    maxPositions,
    normEps: f.positiveNumber('rms_norm_eps', 1e-6),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2' ? true : attentionBias,
    outputBias: modelType === 'qwen2' ? false : attentionBias,
    mlpBias: f.bool('mlp_bias', false),
    rope: { headDim, theta: f.positiveNumber('rope_theta', 10000), scaling: ropeScaling(f, maxPositions), maxPositions },
    raw,
  };
}
