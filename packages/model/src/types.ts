import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './modelConfig.js';

/**
 * One entry of a model's ordered block list. Anything that maps a hidden state [b, t, d] to a hidden
 * state of the same shape qualifies: an original transformer block, a harmonizer, a compressed block,
 * a LoRA-wrapped block, an identity.
 */
export interface BlockModule {
  /** e.g. 'gpt2.block', 'harmonizer', 'identity'. */
  readonly kind: string;
  /** Index of the block this module stands for in the original model (HF names use it). */
  readonly sourceIndex: number;
  apply(x: tf.Tensor3D): tf.Tensor3D;
  /** Canonical HF names for original weights (`transformer.h.3.mlp.c_fc.weight`); module-specific otherwise. */
  namedVariables(): Map<string, tf.Variable>;
  dispose(): void;
}

export interface HiddenOptions {
  /** Apply block-list positions [0, upToBlock) (default: every block). */
  upToBlock?: number;
  /** Apply the final LayerNorm after the blocks (default false; only allowed when every block ran). */
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
  readonly embeddings: { readonly wte: tf.Variable; readonly wpe: tf.Variable };
  /** Ordered and mutable: swap entries, splice them out, insert new ones. */
  blocks: BlockModule[];
  readonly lnF: { readonly gamma: tf.Variable; readonly beta: tf.Variable };
  /** Token + position embeddings: ids int32 [b, t] → [b, t, d]. */
  embed(ids: tf.Tensor2D): tf.Tensor3D;
  /** Run block-list positions [from, to) on a hidden state. */
  runBlocks(x: tf.Tensor3D, from?: number, to?: number): tf.Tensor3D;
  /** Final norm + tied LM head: [b, t, d] → logits [b, t, V]. */
  head(h: tf.Tensor3D): tf.Tensor3D;
  hidden(ids: tf.Tensor2D, opts?: HiddenOptions): tf.Tensor3D;
  logits(ids: tf.Tensor2D): tf.Tensor3D;
  /** [b, t−1]: −log p(ids[:, i+1] | ids[:, ..i]). */
  tokenNll(ids: tf.Tensor2D): tf.Tensor2D;
  /** Mean NLL over target positions where lossMask [b, t−1] is 1 (default: all). */
  loss(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar;
  /** Sum of masked NLL (what token-weighted gradient accumulation needs). */
  lossSum(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar;
  /** 'embeddings', 'block.<sourceIndex>' (one per block-list entry), 'ln_f'. */
  parameterGroups(): Map<string, tf.Variable[]>;
  /** Every weight under its canonical name (the live variables, not copies). */
  namedWeights(): Map<string, tf.Variable>;
  save(dir: string, opts?: SaveOptions): Promise<void>;
  dispose(): void;
}
