import type { CausalLM } from '@scaleot/model';
import { harmonizerGradientStep, rolloutLoss } from './harmonizerStep.js';
import type { Stage1Executor, Stage1Gradients, Stage1Round, Stage1RunContext } from './Stage1Executor.js';
import { windowsAt } from './Stage1Executor.js';

/** Stage-1 compute in this process on a loaded, frozen model (the single-process trainer). */
export class LocalStage1Executor implements Stage1Executor {
  private run?: Stage1RunContext;

  /** `ownsModel`: dispose the model on close. Default true. */
  constructor(
    readonly model: CausalLM,
    private readonly ownsModel = true,
  ) {}

  async start(run: Stage1RunContext): Promise<void> {
    this.run = run;
  }

  async gradients(round: Stage1Round): Promise<Stage1Gradients> {
    const { hyper, streams, harmonizers } = this.run!;
    const batch = windowsAt(streams.train, round.trainStarts, hyper.seqLen + 1);
    const g = harmonizerGradientStep(this.model, harmonizers, round.mask, batch, { alignWeight: hyper.alignWeight, microBatchSize: hyper.microBatchSize });
    return { ...g, rows: batch.rows };
  }

  async rollouts(round: Stage1Round): Promise<number[]> {
    const { hyper, streams, harmonizers } = this.run!;
    const val = windowsAt(streams.val, round.rollout!.valStarts, hyper.seqLen + 1);
    return round.rollout!.candidates.map((m) => rolloutLoss(this.model, harmonizers, m, val, hyper.microBatchSize));
  }

  async close(): Promise<void> {
    if (this.ownsModel) this.model.dispose();
  }
}
