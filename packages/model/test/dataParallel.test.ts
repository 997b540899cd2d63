import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DataParallelTrainer, Trainer, createModel, tokenBatch, useBackend, warmupCosine, type StepInfo } from '@scaleot/model';
import { microConfig, randomIds, randomModel, rng, snapshot } from './helpers.js';

// Both sides sum the same per-micro-batch float32 gradients, only in a different order, and apply
// the same float32 AdamW: parameters agree to float rounding. Tolerance: |Δ| ≤ 1e-5·max(1, |p|)
// after 3 steps, while the steps themselves move parameters by ~1e-2.
const TOL = 1e-5;

/**
 * The key bias shifts every score of a query row by the same q·b, which softmax cancels: its true
 * gradient is exactly 0, so what both sides compute is float noise, and Adam's m/√v turns noise of
 * either sign into a full ±lr step. Those coordinates are compared only for staying within the
 * step budget; everything else must agree to TOL.
 */
function isKeyBias(name: string, i: number): boolean {
  const d = microConfig().hiddenSize;
  return name.endsWith('.attn.c_attn.bias') && i >= d && i < 2 * d;
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`DataParallelTrainer on ${backend}`, () => {
    it('2 threads match the 1-thread Trainer on the same global batches (3 steps, masked loss)', async () => {
      await useBackend(backend);
      const config = microConfig();
      const { model: single, weights } = randomModel(config, 21);
      const start = await snapshot(single);
      const opts = { microBatchSize: 2, gradClip: 0.5, schedule: warmupCosine({ warmupSteps: 1, totalSteps: 3, peakLr: 2e-2 }), adamW: { weightDecay: 0.1 } };
      const r = rng(3);
      const batches = [0, 1, 2].map((s) => {
        const rows = randomIds(8, 12, config.vocabSize, 100 + s);
        return tokenBatch(rows, rows.map(() => Array.from({ length: 11 }, () => (r() < 0.7 ? 1 : 0))));
      });
      const trainer = new Trainer(single, opts);
      const one: StepInfo[] = [];
      for (const b of batches) one.push(await trainer.step(b));

      const replica = createModel(config, weights);
      const dp = await DataParallelTrainer.create(replica, { ...opts, threads: 2, backend });
      try {
        const two: StepInfo[] = [];
        for (const b of batches) two.push(await dp.step(b));
        for (let s = 0; s < 3; s++) {
          expect(two[s].loss).toBeCloseTo(one[s].loss, 5);
          expect(two[s].gradNorm).toBeCloseTo(one[s].gradNorm, 4);
          expect(two[s].lr).toBe(one[s].lr);
          expect(two[s].tokens).toBe(one[s].tokens);
        }
        expect(one[0].gradNorm).toBeGreaterThan(0.5); // clipping was active
        const want = await snapshot(single);
        const got0 = await dp.getWeights(0);
        const got1 = await dp.getWeights(1);
        let maxDiff = 0;
        let maxMove = 0;
        for (const [name, w] of want) {
          const g0 = got0.get(name)!;
          const g1 = got1.get(name)!;
          // The replicas apply the same update to the same sum: identical bits.
          expect(Buffer.from(g0.buffer).equals(Buffer.from(g1.buffer)), name).toBe(true);
          const s0 = start.get(name)!;
          for (let i = 0; i < w.length; i++) {
            if (isKeyBias(name, i)) continue;
            maxDiff = Math.max(maxDiff, Math.abs(w[i] - g0[i]) / Math.max(1, Math.abs(w[i])));
            maxMove = Math.max(maxMove, Math.abs(w[i] - s0[i]));
          }
        }
        for (const [name, w] of want) {
          for (let i = 0; i < w.length; i++) if (isKeyBias(name, i)) expect(Math.abs(w[i] - got0.get(name)![i])).toBeLessThanOrEqual(2 * 3 * 2e-2 + 1e-6);
        }
        console.log(`${backend}: max relative |Δparam| 1 vs 2 threads after 3 steps ${maxDiff.toExponential(2)}; max move ${maxMove.toExponential(2)}`);
        expect(maxMove).toBeGreaterThan(1e-2);
        expect(maxDiff).toBeLessThan(TOL);

        // syncTo brings the trained weights back into a main-thread model; optimizer state round-trips.
        await dp.syncTo(replica);
        const synced = await snapshot(replica);
        for (const [name, w] of synced) expect(Buffer.from(w.buffer).equals(Buffer.from(got0.get(name)!.buffer))).toBe(true);
        const state = await dp.getOptimizerState();
        expect(state.step).toBe(3);
        await dp.setOptimizerState(state);
        expect(dp.stepCount).toBe(3);
      } finally {
        await dp.close();
        trainer.dispose();
        single.dispose();
        replica.dispose();
      }
      await expect(dp.step(batches[0])).rejects.toThrow(/closed/);
    });
  });
}

describe('DataParallelTrainer start-up failure', () => {
  it('rejects with a typed error and leaves no replica running', async () => {
    await useBackend('cpu');
    const { model } = randomModel(microConfig(), 1);
    const missing = join(tmpdir(), 'scaleot-no-such-replica-module.mjs');
    await expect(DataParallelTrainer.create(model, { threads: 2, backend: 'cpu', replica: { module: missing } })).rejects.toMatchObject({ code: 'WORKER_FAILED' });
    model.dispose();
  });
});
