import type { ModelConfig, TokenBatch } from '@scaleot/model';
import { tokenBatch } from '@scaleot/model';
import type * as tf from '@tensorflow/tfjs';
import type { Harmonizer } from './Harmonizer.js';
import type { Stage1HyperParameters } from './stage1.js';
import type { Stage1Layout } from './stage1Artifacts.js';

/** What an executor is told once, before the first round. */
export interface Stage1RunContext {
  hyper: Stage1HyperParameters;
  layout: Stage1Layout;
  modelConfig: Pick<ModelConfig, 'nLayer' | 'hiddenSize' | 'normEps'>;
  streams: { train: Int32Array; val: Int32Array };
  /** The harmonizers the loop trains (the executor reads them each round; the loop updates them). */
  harmonizers: ReadonlyMap<number, Harmonizer>;
}

/** One round (= one trainer step) as the loop decided it: the same draws whatever executes it. */
export interface Stage1Round {
  /** 0-based step. */
  step: number;
  /** The training mask (1 raw, 0 harmonizer) by original block index. */
  mask: number[];
  /** Starts of the batch's windows (seqLen + 1 tokens each) in the train stream. */
  trainStarts: number[];
  /** Set on importance-update rounds: the held-out windows and the candidate masks to score. */
  rollout?: { valStarts: number[]; candidates: number[][] };
}

/** The round's harmonizer gradients, normalised by the whole batch (tokens and rows). */
export interface Stage1Gradients {
  /** By variable name; the loop disposes them. */
  grads: Map<string, tf.Tensor>;
  nllSum: number;
  tokens: number;
  alignSum: number;
  rows: number;
}

/**
 * Where stage 1's compute runs (Ray Train's "backend"): the loop (`stage1Loop`) owns the seeded draws,
 * the harmonizers, their optimizer, the importance scores, checkpoints and artifacts; an executor only
 * computes gradients of a round's batch and then, after the loop applied the update, the candidates'
 * losses. Local (this process), cluster (shard and rollout jobs over a queue), or a pipeline of stages.
 */
export interface Stage1Executor {
  /** Called once before the first round. */
  start(run: Stage1RunContext): Promise<void>;
  gradients(round: Stage1Round): Promise<Stage1Gradients>;
  /** Called after the round's update was applied to the harmonizers, on rounds with `rollout`; losses by candidate. */
  rollouts(round: Stage1Round): Promise<number[]>;
  /** Called after every round (its checkpoint is on disk). */
  endRound?(round: Stage1Round): Promise<void> | void;
  close(): Promise<void>;
}

/** The batch of windows at `starts` (what randomWindows cuts for the same draws). */
export function windowsAt(stream: Int32Array, starts: readonly number[], windowLength: number): TokenBatch {
  return tokenBatch(starts.map((s) => stream.slice(s, s + windowLength)));
}
