import { performance } from 'node:perf_hooks';
import type { Stage1Executor, Stage1Gradients, Stage1Round, Stage1RunContext } from '@scaleot/scaleot';
import { createTensor, TensorSet } from '@scaleot/transport';
import * as tf from '@tensorflow/tfjs';
import { ClusterError } from './ClusterError.js';
import type { PipelineRun } from './PipelineRun.js';
import { microBatches, type PipelineSession } from './PipelineSession.js';

/** What the executor measured of the last round. */
export interface PipelineRoundCompute {
  /** The gradient step through the stages (forward, backward, collect). */
  gradientSeconds: number;
  /** All candidates' rollouts, in flight together. */
  rolloutSeconds: number;
}

/**
 * Stage 1's compute on a pipeline of stage workers, for a model larger than one worker: each stage
 * holds its blocks and computes with the harmonizers of its blocks (sent to it each phase, versioned);
 * a round's batch goes through the stages as micro-batches forward and its gradient back, and the
 * rollouts' candidate masks go forward together. The loop keeps the harmonizers' master copy and their
 * optimizer (they are small beside the blocks) and so decides every draw; the micro-batches are the
 * single-process ones and every stage sums its gradients in their order, so the run equals the
 * single-process run up to float rounding, and a round a dead stage interrupted runs again whole.
 */
export class PipelineStage1Executor implements Stage1Executor {
  private run?: Stage1RunContext;
  last: PipelineRoundCompute = { gradientSeconds: 0, rolloutSeconds: 0 };

  constructor(private readonly pipeline: PipelineRun) {}

  async start(run: Stage1RunContext): Promise<void> {
    this.run = run;
  }

  async gradients(round: Stage1Round): Promise<Stage1Gradients> {
    const { hyper, streams, harmonizers } = this.run!;
    const rows = round.trainStarts.map((s) => streams.train.slice(s, s + hyper.seqLen + 1));
    const batches = microBatches(rows, hyper.microBatchSize);
    const tokens = rows.length * hyper.seqLen;
    const replaced = [...harmonizers.keys()].filter((i) => round.mask[i] === 0);
    const started = performance.now();
    const result = await this.pipeline.attempt(async (session) => {
      await this.sendHarmonizers(session);
      const plan = this.pipeline.plan.stages;
      if (replaced.length === 0) {
        // Nothing replaced: no gradient, but the loss is still reported.
        const sums = await session.maskedNllSums(batches, round.mask);
        return { grads: new Map<string, { data: Float32Array; shape: number[] }>(), nllSum: sums.reduce((a, b) => a + b, 0), alignSum: 0 };
      }
      const lowest = plan.findIndex((s) => replaced.some((i) => i >= s.from && i < s.to));
      return session.trainStep(batches, round.mask, { tokenNorm: tokens, rowsNorm: rows.length, alignWeight: hyper.alignWeight, alignCount: replaced.length, lowest });
    });
    this.last = { gradientSeconds: (performance.now() - started) / 1000, rolloutSeconds: 0 };
    const grads = new Map<string, tf.Tensor>();
    for (const [name, { data, shape }] of result.grads) grads.set(name, tf.tensor(data, shape, 'float32'));
    return { grads, nllSum: result.nllSum, tokens, alignSum: result.alignSum, rows: rows.length };
  }

  async rollouts(round: Stage1Round): Promise<number[]> {
    const { hyper, streams } = this.run!;
    const { candidates, valStarts } = round.rollout!;
    const rows = valStarts.map((s) => streams.val.slice(s, s + hyper.seqLen + 1));
    const batches = microBatches(rows, hyper.microBatchSize);
    const tokens = rows.length * hyper.seqLen;
    const started = performance.now();
    const losses = await this.pipeline.attempt(async (session) => {
      await this.sendHarmonizers(session);
      // Every candidate's micro-batches in flight together; each candidate's sum in micro-batch order.
      const sums = await Promise.all(candidates.map((mask) => session.maskedNllSums(batches, mask)));
      return sums.map((parts) => parts.reduce((a, b) => a + b, 0) / tokens);
    });
    this.last.rolloutSeconds = (performance.now() - started) / 1000;
    if (!losses.every(Number.isFinite)) throw new ClusterError('ROUND_FAILED', `round ${round.step}: a rollout loss is not finite (${losses.join(', ')})`, { where: 'pipeline stage 1' });
    return losses;
  }

  async close(): Promise<void> {
    await this.pipeline.close();
  }

  /** The harmonizers as they are now, each to the stage holding its block, as a new version. */
  private async sendHarmonizers(session: PipelineSession): Promise<void> {
    const tensors = new TensorSet();
    const stageOfBlock = new Map<number, number>();
    for (const s of this.pipeline.plan.stages) for (let i = s.from; i < s.to; i++) stageOfBlock.set(i, s.index);
    const owner = new Map<string, number[]>();
    for (const [i, h] of this.run!.harmonizers) {
      for (const [name, v] of h.namedVariables()) {
        tensors.set(name, createTensor((await v.data()) as Float32Array, v.shape));
        owner.set(name, [stageOfBlock.get(i)!]);
      }
    }
    await session.sendParams(tensors, (name) => owner.get(name)!);
  }
}
