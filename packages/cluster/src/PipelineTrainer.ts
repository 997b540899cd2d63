import { performance } from 'node:perf_hooks';
import type { TokenBatch } from '@scaleot/model';
import type { GradientExecutor } from '@scaleot/offsite';
import * as tf from '@tensorflow/tfjs';
import type { PipelineRun } from './PipelineRun.js';
import type { PipelineSession } from './PipelineSession.js';
import { sendWeights, type StagesHolding } from './stageWeights.js';

/**
 * Gradients of a training step (tuning, full fine-tuning) on a pipeline of stage workers, for
 * `trainLoop`: each step the trainable weights go to the stages holding them (versioned), the
 * micro-batches go forward and their gradients back, and every stage returns the gradients of the
 * weights it holds, summed in micro-batch order. The loop keeps the weights and the optimizer, so a
 * step a dead stage interrupted runs again whole under a new plan and the run stays the
 * single-process one.
 */
export class PipelineTrainer implements GradientExecutor {
  private weights = new Map<string, Float32Array>();
  /** Seconds of the last step through the stages. */
  lastStepSeconds = 0;

  /** `shapes`: the trainable weights' canonical names and shapes. */
  constructor(
    private readonly pipeline: PipelineRun,
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
    private readonly stagesOf: StagesHolding,
  ) {}

  async loadTrainable(values: ReadonlyMap<string, Float32Array>): Promise<void> {
    this.weights = new Map([...values].map(([n, v]) => [n, Float32Array.from(v)]));
  }

  async gradients(parts: TokenBatch[], normalizer: number): Promise<{ grads: Map<string, tf.Tensor>; lossSum: number }> {
    const batches = parts.map((p) => ({ ids: p.ids, shape: [p.rows, p.seqLen] as [number, number], lossMask: p.lossMask }));
    const started = performance.now();
    const result = await this.pipeline.attempt(async (session) => {
      await this.sendWeights(session);
      const holders = [...this.shapes.keys()].flatMap((n) => this.stagesOf(n, this.pipeline.plan));
      return session.trainStep(batches, [], { tokenNorm: normalizer, rowsNorm: 1, alignWeight: 0, alignCount: 1, lowest: Math.min(...holders) });
    });
    this.lastStepSeconds = (performance.now() - started) / 1000;
    const grads = new Map<string, tf.Tensor>();
    for (const [name, shape] of this.shapes) {
      const g = result.grads.get(name);
      grads.set(name, g ? tf.tensor(g.data, g.shape, 'float32') : tf.zeros(shape as number[]));
    }
    return { grads, lossSum: result.nllSum };
  }

  /** Sends the current weights as a new version (also before evaluating the trained model on the stages). */
  async sendWeights(session: PipelineSession): Promise<void> {
    await sendWeights(session, this.pipeline.plan, new Map([...this.shapes].map(([name, shape]) => [name, { data: this.weights.get(name)!, shape }])), this.stagesOf);
  }
}
