import { familyOf, readModelConfig, stageParameters, type StagePlan } from '@scaleot/model';
import { createTensor, TensorSet } from '@scaleot/transport';
import type { PipelineSession } from './PipelineSession.js';

/** Which stages of a plan hold a weight: its block's stage; the embedding the first, the head the last (both, for a tied embedding). */
export type StagesHolding = (name: string, plan: StagePlan) => number[];

/** {@link StagesHolding} for the model (or emulator) in `dir`; each plan's stage parameter sets are worked out once (it is asked per weight, every step). */
export async function stagesHolding(dir: string): Promise<StagesHolding> {
  const config = await readModelConfig(dir);
  const family = familyOf(config);
  const held = new WeakMap<StagePlan, Set<string>[]>();
  return (name, plan) => {
    let sets = held.get(plan);
    if (!sets) {
      sets = plan.stages.map((s) => stageParameters(family, config, s).names);
      held.set(plan, sets);
    }
    return plan.stages.filter((_, i) => sets[i].has(name)).map((s) => s.index);
  };
}

/** Sends weights to the stages holding them, as a new parameter version (batches after it wait for them). */
export async function sendWeights(session: PipelineSession, plan: StagePlan, weights: ReadonlyMap<string, { data: Float32Array; shape: readonly number[] }>, holding: StagesHolding): Promise<void> {
  const tensors = new TensorSet();
  for (const [name, w] of weights) tensors.set(name, createTensor(w.data, w.shape));
  await session.sendParams(tensors, (name) => holding(name, plan));
}
