import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig, ModelFamily } from './families/types.js';

/** What a forward pass may be told besides the ids (HF's `attention_mask` and `position_ids`). */
export interface ForwardOptions {
  /** [b, t]: 1 for a token, 0 for padding (default: every position is a token). */
  attentionMask?: tf.Tensor2D;
  /** [b, t] int32 positions (default: the family's rule: 0…t−1, or OPT's from the mask). */
  positionIds?: tf.Tensor2D;
}

/** Per-forward state every block of the list sees. Absent fields mean "plain causal, positions 0…t−1". */
export interface BlockContext {
  /** Additive attention bias [b, t, t] (causal and padding, 0 or −1e9); absent = the cached causal mask. */
  attentionBias?: tf.Tensor3D;
  /** [b, t] int32 positions (rotary families); absent = 0…t−1 for every row. */
  positionIds?: tf.Tensor2D;
}

/**
 * One entry of a model's ordered block list. Anything that maps a hidden state [b, t, d] to a hidden
 * state of the same shape qualifies: an original transformer block, a harmonizer, a compressed block,
 * a LoRA-wrapped block, an identity.
 */
export interface BlockModule {
  /** e.g. 'gpt2.block', 'llama.block', 'scaleot.harmonizer', 'identity'. */
  readonly kind: string;
  /** Index of the block this module stands for in the original model (HF names use it). */
  readonly sourceIndex: number;
  apply(x: tf.Tensor3D, ctx?: BlockContext): tf.Tensor3D;
  /** Canonical HF names for original weights (`model.layers.3.mlp.up_proj.weight`); module-specific otherwise. */
  namedVariables(): Map<string, tf.Variable>;
  dispose(): void;
}

/** A dense layer of a block that LoRA can wrap (see `Linear`). */
export interface LoraHost {
  /** Block-relative name → the block's dense layers. */
  linears(): Map<string, import('./Linear.js').Linear>;
}

/** A family's embeddings, final norm and LM head: everything of a causal LM outside its blocks. */
export interface ModelStem {
  /** ids int32 [b, t] → hidden [b, t, d] (token and, where the family has them, learned positions). */
  embed(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D;
  /** Final norm (when the family has one) without the head: [n, d] → [n, d]. */
  finalNorm(h: tf.Tensor2D): tf.Tensor2D;
  /** Final norm + LM head: [b, t, d] → logits [b, t, V]. */
  head(h: tf.Tensor3D): tf.Tensor3D;
  /** Embedding-side weights by HF name (parameter group 'embeddings'). */
  embeddingVariables(): Map<string, tf.Variable>;
  /** Final-norm and untied-head weights by HF name (parameter group 'head'). */
  headVariables(): Map<string, tf.Variable>;
  dispose(): void;
}

export interface HiddenOptions extends ForwardOptions {
  /** Apply block-list positions [0, upToBlock) (default: every block). */
  upToBlock?: number;
  /** Apply the final norm after the blocks (default false; only allowed when every block ran). */
  finalNorm?: boolean;
}

export type SaveDtype = 'F32' | 'F16' | 'BF16';

export interface SaveOptions {
  /** Stored dtype (default 'F32'); config.json's dtype is updated to match. */
  dtype?: SaveDtype;
  /** Absolute paths copied into the checkpoint dir (tokenizer files …). */
  extraFiles?: string[];
  /** Shard when the data exceeds this many bytes (default: one file). */
  maxShardBytes?: number;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly family: ModelFamily;
  readonly stem: ModelStem;
  /** Ordered and mutable: swap entries, splice them out, insert new ones. */
  blocks: BlockModule[];
  /** Token (+ position) embeddings: ids int32 [b, t] → [b, t, d]. */
  embed(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D;
  /** What the blocks need to see of a padded or re-positioned batch (undefined for plain causal rows). */
  blockContext(ids: tf.Tensor2D, opts?: ForwardOptions): BlockContext | undefined;
  /** Run block-list positions [from, to) on a hidden state. */
  runBlocks(x: tf.Tensor3D, from?: number, to?: number, ctx?: BlockContext): tf.Tensor3D;
  /** Final norm + LM head: [b, t, d] → logits [b, t, V]. */
  head(h: tf.Tensor3D): tf.Tensor3D;
  hidden(ids: tf.Tensor2D, opts?: HiddenOptions): tf.Tensor3D;
  logits(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D;
  /** [b, t−1]: −log p(ids[:, i+1] | ids[:, ..i]). */
  tokenNll(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor2D;
  /** Mean NLL over target positions where lossMask [b, t−1] is 1 (default: all). */
  loss(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar;
  /** Sum of masked NLL (what token-weighted gradient accumulation needs). */
  lossSum(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar;
  /** 'embeddings', 'block.<sourceIndex>' (one per block-list entry), 'head' (final norm, untied head). */
  parameterGroups(): Map<string, tf.Variable[]>;
  /** Every weight under its canonical name (the live variables, not copies). */
  namedWeights(): Map<string, tf.Variable>;
  save(dir: string, opts?: SaveOptions): Promise<void>;
  dispose(): void;
}
