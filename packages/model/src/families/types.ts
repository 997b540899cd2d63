import type * as tf from '@tensorflow/tfjs';
import type { ParameterSpec } from '@scaleot/checkpoint';
import type { ParamFactory } from '../ParamFactory.js';
import type { BlockModule, ModelStem } from '../types.js';

/**
 * The normalised config every package reads, whatever the family's HF spelling. Families extend it
 * with what only they need (GPT-2's activation, OPT's post-LN switch, LLaMA's RoPE settings).
 */
export interface ModelConfig {
  /** HF `model_type` as written in config.json. */
  modelType: string;
  vocabSize: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Width of the residual stream (GPT-2 n_embd, OPT/LLaMA hidden_size). */
  hiddenSize: number;
  /** Query heads. */
  nHead: number;
  /** Key/value heads (grouped-query attention); nHead when the family has no GQA. */
  nKvHead: number;
  /** Per-head width: `head_dim` when the config gives it, else hiddenSize / nHead. */
  headDim: number;
  /** MLP width (GPT-2 n_inner, OPT ffn_dim, LLaMA intermediate_size). */
  intermediateSize: number;
  /** Longest sequence the model takes (n_positions / max_position_embeddings): the evaluation context. */
  maxPositions: number;
  /** Epsilon of the family's norm (LayerNorm or RMSNorm). */
  normEps: number;
  /** The LM head is the token embedding (not stored in the checkpoint). */
  tieWordEmbeddings: boolean;
  /** The config.json content as read, for writing it back unchanged. */
  raw: Record<string, unknown>;
}

/** Stored weight layout of a dense matrix: HF Conv1D is `[in, out]` (GPT-2), nn.Linear `[out, in]`. */
export type WeightLayout = 'in_out' | 'out_in';

/** A dense matrix inside each block that compression or LoRA may target. */
export interface LinearTarget {
  /** Block-relative module name, e.g. `attn.c_attn` or `self_attn.q_proj` (the weight is `<name>.weight`). */
  name: string;
  layout: WeightLayout;
  /** Part of the attention (SRC's default targets) or the MLP. */
  part: 'attention' | 'mlp';
}

/** Where a family keeps its tensors, by HF name. */
export interface FamilyNaming {
  /** `transformer.h.3` / `model.decoder.layers.3` / `model.layers.3` (no trailing dot). */
  blockPrefix(index: number): string;
  /** The block a tensor belongs to, or undefined for embeddings, norms and the head. */
  blockIndex(name: string): number | undefined;
  /** The canonical name of a stored one (adds the prefix that bare-model checkpoints omit). */
  canonicalName(stored: string): string;
  /** Non-parameter buffers HF may store (ignored by validation). */
  isBuffer(canonical: string): boolean;
  /** `[head, embedding]` names: when tied, the head is not stored and, if it is, must equal the embedding. */
  readonly tiedKeys: ReadonlyArray<readonly [string, string]>;
}

/** What a family contributes: one folder under `families/`, one entry in the map keyed by `model_type`. */
export interface ModelFamily<C extends ModelConfig = ModelConfig> {
  /** Display name ("GPT-2", "OPT", "LLaMA"). */
  readonly name: string;
  /** HF `model_type` values this family reads (the map's keys). */
  readonly modelTypes: readonly string[];
  /** HF config.json content → normalised config; BAD_CONFIG (CheckpointError) naming the file and key. */
  parseConfig(raw: Record<string, unknown>, where: string): C;
  readonly naming: FamilyNaming;
  /** Every parameter, canonical names and shapes, in module order (the head only when untied). */
  expectedParameters(config: C): ParameterSpec[];
  /** Embeddings, final norm and LM head. */
  createStem(config: C, params: ParamFactory): ModelStem;
  /** One original transformer block. */
  createBlock(index: number, config: C, params: ParamFactory): BlockModule;
  /** Dense matrices per block, in module order: LoRA wraps all of them, SRC defaults to the attention ones. */
  linearTargets(config: C): LinearTarget[];
}

export type AnyFamily = ModelFamily<ModelConfig>;

/** Reads tensors or variables by HF name (the live variables of a model, or host arrays). */
export type NamedTensors = Map<string, tf.Tensor>;
