import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelTensorBytes, PipelinePlanError, planStages, readModelConfig, workerMemoryBytes, type ModelConfig } from '@scaleot/model';
import { FIXTURES } from './fixtures.js';

const llama = () => readModelConfig(join(FIXTURES, 'models', 'sotu-llama-24l'));
const gpt2 = () => readModelConfig(join(FIXTURES, 'models', 'sotu-gpt2-tiny'));
const MiB = 2 ** 20;
const settings = { fixedOverheadBytes: 64 * MiB, activationBytes: 4 * MiB, weightSlack: 0.05 };

/** Best max-stage weight over every contiguous cut into at most k stages (brute force). */
function bruteForceBest(config: ModelConfig, k: number, fits: (w: number) => boolean): number {
  const b = modelTensorBytes(config);
  const n = config.nLayer;
  const w = (from: number, to: number) => b.blocks.slice(from, to).reduce((x, y) => x + y, 0) + (from === 0 ? b.embedding : 0) + (to === n ? b.head : 0);
  let best = Infinity;
  const walk = (from: number, left: number, worst: number) => {
    if (from === n) {
      best = Math.min(best, worst);
      return;
    }
    if (left === 0) return;
    for (let to = from + 1; to <= n; to++) {
      const stage = w(from, to);
      if (!fits(stage)) break;
      walk(to, left - 1, Math.max(worst, stage));
    }
  };
  walk(0, k, 0);
  return best;
}

describe('planStages', () => {
  it('adds up the float32 bytes of every parameter once (head untied here)', async () => {
    const config = await llama();
    const b = modelTensorBytes(config);
    expect(b.blocks).toHaveLength(24);
    expect(b.embedding).toBe(4 * config.vocabSize * config.hiddenSize);
    expect(b.head).toBe(4 * config.vocabSize * config.hiddenSize + 4 * config.hiddenSize);
    expect(b.blocks.reduce((x, y) => x + y, 0) + b.embedding + b.head).toBe(b.total);
    // Tied GPT-2: the last stage holds the embedding as its head, the total counts it once.
    const g = modelTensorBytes(await gpt2());
    expect(g.head).toBeGreaterThan(g.embedding / 2);
    expect(g.blocks.reduce((x, y) => x + y, 0) + g.embedding + g.head - g.total).toBeGreaterThan(0);
  });

  it('is one stage when the model fits one worker: nothing changes', async () => {
    const config = await llama();
    const plan = planStages(config, { budgets: [8 * 2 ** 30, 8 * 2 ** 30, 8 * 2 ** 30], ...settings });
    expect(plan.stages).toEqual([expect.objectContaining({ index: 0, from: 0, to: 24 })]);
  });

  it('cuts contiguous, balanced stages that each fit a worker capped near 45% of the model', async () => {
    const config = await llama();
    const bytes = modelTensorBytes(config);
    const budget = settings.fixedOverheadBytes + settings.activationBytes + bytes.largestTensor + 0.45 * bytes.total * 1.05;
    const plan = planStages(config, { budgets: [budget, budget, budget], ...settings });
    expect(plan.stages.length).toBeGreaterThanOrEqual(3);
    expect(plan.stages[0].from).toBe(0);
    expect(plan.stages.at(-1)!.to).toBe(24);
    for (let i = 1; i < plan.stages.length; i++) expect(plan.stages[i].from).toBe(plan.stages[i - 1].to);
    for (const s of plan.stages) expect(s.estimatedBytes).toBeLessThanOrEqual(budget);
    expect(plan.stages.reduce((n, s) => n + s.weightBytes, 0)).toBe(bytes.total);
    const worst = Math.max(...plan.stages.map((s) => s.weightBytes));
    const maxWeights = (budget - settings.fixedOverheadBytes - settings.activationBytes - bytes.largestTensor) / 1.05;
    // Within one byte of the best balance any contiguous 3-way cut reaches.
    expect(worst - bruteForceBest(config, plan.stages.length, (w) => w <= maxWeights)).toBeLessThanOrEqual(1);
  });

  it('throws DOES_NOT_FIT, saying how many workers it would take, when k workers cannot hold the model', async () => {
    const config = await llama();
    const bytes = modelTensorBytes(config);
    const budget = settings.fixedOverheadBytes + settings.activationBytes + bytes.largestTensor + 0.3 * bytes.total;
    let error: unknown;
    try {
      planStages(config, { budgets: [budget, budget], ...settings });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PipelinePlanError);
    expect(error).toMatchObject({ code: 'DOES_NOT_FIT', details: { workers: 2 } });
    expect((error as PipelinePlanError).details.requiredWorkers).toBeGreaterThanOrEqual(3);
    expect(() => planStages(config, { budgets: [budget, budget, budget, budget], ...settings })).not.toThrow();
  });

  it('honours a cap on weights per stage (the wasm heap)', async () => {
    const config = await llama();
    const plan = planStages(config, { budgets: Array(8).fill(2 ** 34), ...settings, maxStageWeightBytes: modelTensorBytes(config).total / 4 });
    expect(plan.stages.length).toBeGreaterThanOrEqual(4);
    for (const s of plan.stages) expect(s.weightBytes).toBeLessThanOrEqual(modelTensorBytes(config).total / 4);
  });

  it('reads the worker budget from SCALEOT_WORKER_MEMORY_BYTES, else the cgroup or machine memory', () => {
    expect(workerMemoryBytes({ SCALEOT_WORKER_MEMORY_BYTES: '1073741824' })).toBe(2 ** 30);
    expect(workerMemoryBytes({})).toBeGreaterThan(0);
    expect(() => workerMemoryBytes({ SCALEOT_WORKER_MEMORY_BYTES: '12GB' })).toThrow(PipelinePlanError);
  });
});
