import { createLogger, type Logger } from '@scaleot/core';
import { planStages, readModelConfig, type PlanOptions, type StagePlan } from '@scaleot/model';

/** The plan for a model and a set of workers, logged (the coordinator's side of "plan, then run"). */
export async function planPipeline(modelDir: string, budgets: number[], options: Omit<PlanOptions, 'budgets'> = {}, logger?: Logger): Promise<StagePlan> {
  const config = await readModelConfig(modelDir);
  const plan = planStages(config, { ...options, budgets });
  (logger ?? createLogger('cluster.pipeline')).info(
    {
      model: modelDir,
      stages: plan.stages.map((s) => ({ stage: s.index, blocks: [s.from, s.to], weightBytes: s.weightBytes, estimatedBytes: s.estimatedBytes, budgetBytes: s.budgetBytes })),
      modelBytes: plan.modelBytes,
      fixedOverheadBytes: plan.fixedOverheadBytes,
      activationBytes: plan.activationBytes,
    },
    plan.stages.length === 1 ? 'pipeline plan: the model fits one worker' : `pipeline plan: ${plan.stages.length} stages`,
  );
  return plan;
}
