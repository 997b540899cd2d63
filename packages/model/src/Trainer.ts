import type * as tf from '@tensorflow/tfjs';
import type { AdamWOptions, AdamWState } from './AdamW.js';
import { computeGradients } from './gradients.js';
import { ModelError } from './ModelError.js';
import { targetTokens, validateBatch, type TokenBatch } from './TokenBatch.js';
import type { CausalLM } from './types.js';
import { UpdateRule } from './UpdateRule.js';

export interface StepInfo {
  /** 1-based number of the step just taken. */
  step: number;
  /** Mean NLL over the global batch's target tokens (before the update). */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Target tokens in the global batch. */
  tokens: number;
  /** Input tokens (rows × seqLen) processed per second of wall time. */
  tokensPerSecond: number;
  seconds: number;
}

export interface TrainerOptions {
  /** Parameters to train, by name (default: every weight, `model.namedWeights()`). Must be trainable variables. */
  variables?: Map<string, tf.Variable>;
  /** Rows per forward/backward pass; the global batch is accumulated over them (default: the whole batch). */
  microBatchSize?: number;
  /** Max global gradient norm (default 1.0; 0 or Infinity disables clipping). */
  gradClip?: number;
  /** Learning rate per 0-based step (default: constant `adamW.lr` ?? 1e-3). */
  schedule?: (step: number) => number;
  /** AdamW hyper-parameters (defaults in AdamWOptions). */
  adamW?: AdamWOptions;
  /** Called after every step. */
  onStep?: (info: StepInfo) => void;
}

/** Single-thread trainer: accumulate token-weighted gradients over micro-batches, clip, AdamW. */
export class Trainer {
  readonly variables: Map<string, tf.Variable>;
  private readonly rule: UpdateRule;
  private readonly schedule: (step: number) => number;
  private readonly microBatchSize?: number;

  constructor(
    readonly model: CausalLM,
    private readonly opts: TrainerOptions = {},
  ) {
    this.variables = new Map(opts.variables ?? model.namedWeights());
    const frozen = [...this.variables].filter(([, v]) => !v.trainable).map(([n]) => n);
    if (frozen.length > 0) throw new ModelError('NOT_TRAINABLE', `variables created with trainable=false cannot get gradients: ${frozen.slice(0, 3).join(', ')}`, { where: 'Trainer' });
    this.rule = new UpdateRule(this.variables, opts.adamW ?? {}, opts.gradClip ?? 1.0);
    const lr = opts.adamW?.lr ?? 1e-3;
    this.schedule = opts.schedule ?? (() => lr);
    this.microBatchSize = opts.microBatchSize;
  }

  get stepCount(): number {
    return this.rule.optimizer.step;
  }

  async step(batch: TokenBatch): Promise<StepInfo> {
    const started = performance.now();
    validateBatch(batch, this.model.config.vocabSize, this.model.config.maxPositions);
    const tokens = targetTokens(batch);
    if (tokens <= 0) throw new ModelError('BAD_BATCH', 'the loss mask selects no target token', { where: 'batch' });
    const { grads, lossSum } = computeGradients(this.model, this.variables, batch, tokens, this.microBatchSize ?? batch.rows);
    const lr = this.schedule(this.stepCount);
    const gradNorm = this.rule.apply(grads, lr);
    const seconds = (performance.now() - started) / 1000;
    const info: StepInfo = { step: this.stepCount, loss: lossSum / tokens, lr, gradNorm, tokens, tokensPerSecond: (batch.rows * batch.seqLen) / seconds, seconds };
    this.opts.onStep?.(info);
    return info;
  }

  getOptimizerState(): AdamWState {
    return this.rule.optimizer.getState();
  }

  setOptimizerState(state: AdamWState): void {
    this.rule.optimizer.setState(state);
  }

  /** Frees the optimizer state (the model stays). */
  dispose(): void {
    this.rule.dispose();
  }
}
