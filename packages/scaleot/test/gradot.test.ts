import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tokenBatch, useBackend, type CausalLM, type TokenBatch } from '@scaleot/model';
import { loadEmulator } from '@scaleot/offsite';
import {
  adapterGradient,
  buildScaleotEmulator,
  corpusStreams,
  gradientChange,
  gradotKeepScores,
  Harmonizer,
  measureGradotOnModel,
  planEmulator,
  rolloutLoss,
  runStage1,
  type GradotMeasurement,
} from '@scaleot/scaleot';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_DATA_DIR, fixtureModelDir } from '../../../test/support/fixtures.js';
import { gaussian, microConfig, mulberry32, randomModel, randomStream, tempDir } from './helpers.js';

// GradOT-style selection: its gradients against central finite differences of an independently computed
// loss (rolloutLoss), its per-block numbers against a direct recomputation, an exactly identity-equivalent
// stand-in giving exactly zero change, and on the tiny GPT-2 fixture the emulator it selects (α per group,
// recorded in the manifest, deterministic).

beforeAll(async () => {
  await useBackend('wasm');
});

/** A micro GPT-2 (6 blocks, d = 16, vocab 48): adapters 0 and 5, middle 1…4. */
const ADAPTERS = [0, 5];
const MIDDLE = [1, 2, 3, 4];

/** Harmonizers with random non-zero weights (W_up too), so none is the identity. */
function randomHarmonizers(seed: number): Map<number, Harmonizer> {
  const r = mulberry32(seed);
  const out = new Map<number, Harmonizer>();
  for (const i of MIDDLE) {
    const h = new Harmonizer(i, 16, { rank: 4, seed, trainable: false });
    tf.tidy(() => h.upWeight.assign(tf.tensor(Float32Array.from({ length: 4 * 16 }, () => 0.3 * gaussian(r)), [4, 16])));
    tf.tidy(() => h.upBias.assign(tf.tensor(Float32Array.from({ length: 16 }, () => 0.1 * gaussian(r)), [16])));
    out.set(i, h);
  }
  return out;
}

function windows(seed: number, rows = 3, length = 10): TokenBatch {
  const s = randomStream(rows * length, 48, seed);
  return tokenBatch(Array.from({ length: rows }, (_, k) => s.slice(k * length, (k + 1) * length)));
}

function adapterVariables(model: CausalLM): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const b of model.blocks) if (ADAPTERS.includes(b.sourceIndex)) for (const [n, v] of b.namedVariables()) out.set(n, v);
  return out;
}

describe('GradOT: gradients and per-block numbers on a micro model', () => {
  it('the adapter gradient matches central finite differences of the loss along random directions (full model and one block replaced)', () => {
    const model = randomModel(microConfig(6), 11);
    const standIns = randomHarmonizers(5);
    const batch = windows(3);
    const vars = adapterVariables(model);
    for (const mask of [[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1]]) {
      const { gradient, names, loss } = adapterGradient(model, standIns, mask, ADAPTERS, batch, 2);
      expect(names).toEqual([...vars.keys()].sort());
      expect(gradient.length).toBe([...vars.values()].reduce((s, v) => s + v.size, 0));
      // The loss it reports is the mean NLL rolloutLoss computes on its own.
      expect(Math.abs(loss - rolloutLoss(model, standIns, mask, batch))).toBeLessThan(1e-5);
      const originals = names.map((n) => (vars.get(n)!.dataSync() as Float32Array).slice());
      const r = mulberry32(17 + mask[2]);
      for (let d = 0; d < 3; d++) {
        const dir = names.map((_, k) => Float32Array.from({ length: originals[k].length }, () => gaussian(r)));
        let gv = 0;
        let offset = 0;
        dir.forEach((v) => {
          for (let k = 0; k < v.length; k++) gv += gradient[offset + k] * v[k];
          offset += v.length;
        });
        const h = 1e-3;
        const lossAt = (t: number): number => {
          names.forEach((n, k) => {
            const v = vars.get(n)!;
            tf.tidy(() => v.assign(tf.tensor(originals[k].map((x, j) => x + t * dir[k][j]), v.shape)));
          });
          return rolloutLoss(model, standIns, mask, batch);
        };
        const fd = (lossAt(h) - lossAt(-h)) / (2 * h);
        names.forEach((n, k) => tf.tidy(() => vars.get(n)!.assign(tf.tensor(originals[k], vars.get(n)!.shape))));
        // Float32 loss rounding (~5e-7 / 2h) and the O(h²) truncation stay far below 1e-3 + 1 %.
        expect(Math.abs(fd - gv)).toBeLessThan(1e-3 + 0.01 * Math.abs(gv));
        expect(Math.abs(gv)).toBeGreaterThan(1e-2);
      }
    }
    for (const h of standIns.values()) h.dispose();
    model.dispose();
  });

  it('per-block numbers equal a direct recomputation (losses by rolloutLoss, float64 norms), keep scores follow the documented formula', () => {
    const model = randomModel(microConfig(6), 12);
    const standIns = randomHarmonizers(6);
    const batch = windows(4, 4);
    const m = measureGradotOnModel(model, standIns, { middle: MIDDLE, adapterBlocks: ADAPTERS, batch, microBatchSize: 3, lossWeight: 0.5 });
    const full = adapterGradient(model, standIns, [1, 1, 1, 1, 1, 1], ADAPTERS, batch, 4);
    const fullLoss = rolloutLoss(model, standIns, [1, 1, 1, 1, 1, 1], batch);
    expect(Math.abs(m.fullLoss - fullLoss)).toBeLessThan(1e-5);
    expect(m.tokens).toBe(4 * 9);
    let norm = 0;
    for (const g of full.gradient) norm += g * g;
    expect(Math.abs(m.fullGradNorm - Math.sqrt(norm)) / Math.sqrt(norm)).toBeLessThan(1e-5);
    expect(m.blocks.map((b) => b.index)).toEqual(MIDDLE);
    for (const b of m.blocks) {
      const mask = [1, 1, 1, 1, 1, 1];
      mask[b.index] = 0;
      expect(Math.abs(b.lossChange - (rolloutLoss(model, standIns, mask, batch) - fullLoss))).toBeLessThan(2e-5);
      const gi = adapterGradient(model, standIns, mask, ADAPTERS, batch, 1).gradient;
      let diff = 0;
      let dot = 0;
      let ni = 0;
      for (let k = 0; k < gi.length; k++) {
        diff += (gi[k] - full.gradient[k]) ** 2;
        dot += gi[k] * full.gradient[k];
        ni += gi[k] ** 2;
      }
      // Micro-batching (3 vs 1 rows) only reorders float32 sums.
      expect(Math.abs(b.gradChange - Math.sqrt(diff / norm))).toBeLessThan(1e-4 * Math.max(1, b.gradChange));
      expect(Math.abs(b.cosine - dot / Math.sqrt(ni * norm))).toBeLessThan(1e-5);
      expect(b.gradChange).toBeGreaterThan(1e-3);
    }
    const meanG = m.blocks.reduce((s, b) => s + b.gradChange, 0) / 4;
    const meanL = m.blocks.reduce((s, b) => s + Math.abs(b.lossChange), 0) / 4;
    for (const b of m.blocks) expect(b.keepScore).toBeCloseTo(b.gradChange / meanG - (0.5 * b.lossChange) / meanL, 12);
    for (const h of standIns.values()) h.dispose();
    model.dispose();
  });

  it('greedy: round 1 is the single-block measurement, each later round measures its candidates on top of the earlier choices, and each group gets its quota', () => {
    const model = randomModel(microConfig(6), 15);
    const standIns = randomHarmonizers(8);
    const batch = windows(4, 3);
    const groups = [[1, 2, 3], [4]];
    const single = measureGradotOnModel(model, standIns, { middle: MIDDLE, adapterBlocks: ADAPTERS, batch, lossWeight: 0.7 });
    const m = measureGradotOnModel(model, standIns, { middle: MIDDLE, adapterBlocks: ADAPTERS, batch, lossWeight: 0.7, greedy: { groups, quota: [2, 1] } });
    expect(m.blocks).toEqual(single.blocks);
    const rounds = m.rounds!;
    expect(rounds).toHaveLength(3);
    expect(rounds[0].blocks).toEqual(single.blocks);
    const chosen = rounds.map((r) => r.chosen);
    expect(new Set(chosen).size).toBe(3);
    expect(chosen.filter((i) => groups[0].includes(i))).toHaveLength(2);
    expect(chosen).toContain(4);
    const fullLoss = rolloutLoss(model, standIns, [1, 1, 1, 1, 1, 1], batch);
    rounds.forEach((r, k) => {
      // Candidates: every block not chosen yet in a group with quota left; the pick is the lowest keep score.
      const before = chosen.slice(0, k);
      const left = [2, 1].map((q, g) => q - before.filter((i) => groups[g].includes(i)).length);
      expect(r.blocks.map((b) => b.index)).toEqual(groups.flatMap((g, gi) => (left[gi] > 0 ? g.filter((i) => !before.includes(i)) : [])));
      expect(r.chosen).toBe(r.blocks.reduce((a, b) => (b.keepScore < a.keepScore ? b : a)).index);
      const keep = gradotKeepScores(r.blocks, 0.7);
      r.blocks.forEach((b, j) => expect(b.keepScore).toBeCloseTo(keep[j], 12));
      for (const b of r.blocks) {
        const mask = [1, 1, 1, 1, 1, 1];
        for (const i of [...before, b.index]) mask[i] = 0;
        expect(Math.abs(b.lossChange - (rolloutLoss(model, standIns, mask, batch) - fullLoss))).toBeLessThan(2e-5);
      }
    });
    // Round 2's numbers differ from the single-block ones: its candidates are measured with round 1's block compressed.
    const second = rounds[1].blocks[0];
    expect(Math.abs(second.lossChange - single.blocks.find((b) => b.index === second.index)!.lossChange)).toBeGreaterThan(1e-4);
    expect(() => measureGradotOnModel(model, standIns, { middle: MIDDLE, adapterBlocks: ADAPTERS, batch, greedy: { groups, quota: [4, 1] } })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    for (const h of standIns.values()) h.dispose();
    model.dispose();
  });

  it('a stand-in exactly equivalent to its block gives zero gradient and loss change; dropping a real block does not', () => {
    // Block 2 with zero output projections (attention and MLP) is exactly x ↦ x; a fresh harmonizer
    // (W_up = 0, zero biases) is too.
    const zero = (name: string): number | undefined => (/^transformer\.h\.2\.(attn|mlp)\.c_proj\./.test(name) ? 0 : undefined);
    const model = randomModel(microConfig(6), 13, 0.3, zero);
    const identities = new Map(MIDDLE.map((i) => [i, new Harmonizer(i, 16, { rank: 4, trainable: false })]));
    const m = measureGradotOnModel(model, identities, { middle: MIDDLE, adapterBlocks: ADAPTERS, batch: windows(9) });
    const byIndex = new Map(m.blocks.map((b) => [b.index, b]));
    expect(byIndex.get(2)!.gradChange).toBe(0);
    expect(byIndex.get(2)!.lossChange).toBe(0);
    expect(byIndex.get(2)!.cosine).toBeCloseTo(1, 12);
    for (const i of [1, 3, 4]) expect(byIndex.get(i)!.gradChange).toBeGreaterThan(1e-3);
    // The cheapest block to compress by the gradient term alone.
    const keep = gradotKeepScores(m.blocks, 0);
    expect(m.blocks[keep.indexOf(Math.min(...keep))].index).toBe(2);
    for (const h of identities.values()) h.dispose();
    model.dispose();
  });

  it('typed errors: a zero full gradient, an adapter block in the mask, a negative loss weight', () => {
    expect(() => gradientChange(new Float32Array([1, 2]), new Float32Array(2))).toThrow(expect.objectContaining({ code: 'DEGENERATE_GRADIENT' }));
    expect(() => gradientChange(new Float32Array(3), new Float32Array(2))).toThrow(expect.objectContaining({ code: 'BAD_GRADIENT' }));
    expect(() => gradotKeepScores([{ gradChange: 1, lossChange: 1 }], -1)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    const model = randomModel(microConfig(6), 14);
    const standIns = randomHarmonizers(7);
    expect(() => adapterGradient(model, standIns, [0, 1, 1, 1, 1, 1], ADAPTERS, windows(1))).toThrow(expect.objectContaining({ code: 'BAD_MASK' }));
    expect(() => measureGradotOnModel(model, standIns, { middle: [1, 2], adapterBlocks: [], batch: windows(1) })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    for (const h of standIns.values()) h.dispose();
    model.dispose();
  });
});

describe('GradOT selection on the tiny GPT-2 fixture', () => {
  const modelDir = fixtureModelDir('tiny');
  const dataRoot = FIXTURE_DATA_DIR;
  let stage1Dir: string;
  const gradot = { batchSize: 2, seqLen: 24, microBatchSize: 2, seed: 4, corpus: 'sotu', dataRoot, maxDocuments: 4 };

  beforeAll(async () => {
    stage1Dir = join(tempDir('gradot'), 'stage1');
    const streams = await corpusStreams('sotu', dataRoot, modelDir, 4);
    await runStage1({ modelDir, outDir: stage1Dir, streams, nAdapter: 4, rank: 16, steps: 2, batchSize: 2, microBatchSize: 2, seqLen: 24, rlBatchSize: 2, warmupSteps: 1, lr: 3e-3, seed: 1 });
  }, 120_000);

  const lowestPerGroup = (m: GradotMeasurement, groups: number[][], count: number): number[] =>
    groups.flatMap((g) => [...g].sort((a, b) => keepOf(m, a) - keepOf(m, b) || a - b).slice(0, count)).sort((a, b) => a - b);
  const keepOf = (m: GradotMeasurement, i: number): number => m.blocks.find((b) => b.index === i)!.keepScore;

  it('replaces the round(α·4) lowest keep scores of each group, records the criterion and every block\'s numbers, and is deterministic', async () => {
    const a = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('gradot-a'), 'emulator'), alpha: 0.5, select: 'gradot', gradot });
    const groups = [[2, 3, 4, 5], [6, 7, 8, 9]];
    expect(a.plan.groups).toEqual(groups);
    const m = a.gradot!;
    expect(m.criterion).toBe('gradot');
    expect(m.standIn).toBe('harmonizer');
    expect(m.adapterBlocks).toEqual([0, 1, 10, 11]);
    expect(m.blocks.map((b) => b.index)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    for (const b of m.blocks) {
      expect(Number.isFinite(b.gradChange) && b.gradChange > 0).toBe(true);
      expect(Math.abs(b.cosine)).toBeLessThanOrEqual(1 + 1e-9);
    }
    expect(m.tokens).toBe(2 * 24);
    expect(a.plan.replaced).toEqual(lowestPerGroup(m, groups, 2));
    for (const g of groups) expect(g.filter((i) => a.plan.replaced.includes(i))).toHaveLength(2);
    const params = a.manifest.parameters as { selection: GradotMeasurement; replacedMiddle: number[] };
    expect(params.selection.criterion).toBe('gradot');
    expect(params.selection.blocks).toEqual(m.blocks);
    expect(params.replacedMiddle).toEqual(a.plan.replaced);
    // The emulator it wrote carries the harmonizers of exactly those blocks.
    const emu = await loadEmulator(a.outDir);
    expect(emu.model.blocks.filter((b) => b.kind === 'scaleot.harmonizer').map((b) => b.sourceIndex)).toEqual(a.plan.replaced);
    emu.model.dispose();

    const again = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('gradot-b'), 'emulator'), alpha: 0.25, select: 'gradot', gradot });
    expect(again.gradot!.blocks).toEqual(m.blocks);
    expect(again.plan.replaced).toEqual(lowestPerGroup(m, groups, 1));
    // The default criterion is unchanged: the stage-1 scores.
    const importance = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('gradot-c'), 'emulator'), alpha: 0.5 });
    expect(importance.gradot).toBeUndefined();
    expect((importance.manifest.parameters as { selection: unknown }).selection).toEqual({ criterion: 'importance' });
  }, 120_000);

  it('gradot-greedy replaces the blocks its rounds chose, α per group, and records the rounds', async () => {
    const g = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('gradot-g'), 'emulator'), alpha: 0.5, select: 'gradot-greedy', gradot });
    const m = g.gradot!;
    expect(m.criterion).toBe('gradot-greedy');
    expect(m.rounds).toHaveLength(4);
    expect(m.rounds![0].blocks).toEqual(m.blocks);
    expect(g.plan.replaced).toEqual(m.rounds!.map((r) => r.chosen).sort((a, b) => a - b));
    for (const grp of [[2, 3, 4, 5], [6, 7, 8, 9]]) expect(grp.filter((i) => g.plan.replaced.includes(i))).toHaveLength(2);
    expect((g.manifest.parameters as { selection: GradotMeasurement }).selection.rounds).toEqual(m.rounds);
  }, 120_000);

  it('drop mode measures the identity stand-in (the block removed) and drops the lowest keep scores; uniform-replace refuses a criterion', async () => {
    const d = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('gradot-d'), 'emulator'), alpha: 0.5, mode: 'drop', select: 'gradot', gradot });
    expect(d.gradot!.standIn).toBe('identity');
    expect(d.plan.dropped).toEqual(lowestPerGroup(d.gradot!, [[2, 3, 4, 5], [6, 7, 8, 9]], 2));
    const outDir = join(tempDir('gradot-e'), 'emulator');
    await expect(buildScaleotEmulator({ modelDir, stage1Dir, outDir, alpha: 0.5, mode: 'uniform-replace', select: 'gradot', gradot })).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(buildScaleotEmulator({ modelDir, stage1Dir, outDir, alpha: 0.5, select: 'gradot', gradot: { ...gradot, seqLen: 10_000 } })).rejects.toMatchObject({ code: 'BAD_OPTION' });
    expect(existsSync(outDir)).toBe(false);
  }, 120_000);
});

describe('GradOT keep scores with the plan', () => {
  it('planEmulator on keep scores replaces the lowest of each group, α per group', () => {
    const blocks = [0.2, 0.5, 0.1, 0.9, 0.4, 0.3].map((gradChange, k) => ({ gradChange, lossChange: [0.05, 0.01, 0.02, 0.3, 0.0, 0.1][k] }));
    const keep = gradotKeepScores(blocks, 1);
    const scores = [0, ...keep, 0];
    const plan = planEmulator({ scores, middle: [1, 2, 3, 4, 5, 6], alpha: 0.5, groupSize: 4 });
    // Group [1,2,3,4]: 2 replaced; group [5,6]: round(0.5·2) = 1.
    expect(plan.groups).toEqual([[1, 2, 3, 4], [5, 6]]);
    const lowest = (g: number[], k: number) => [...g].sort((a, b) => scores[a] - scores[b]).slice(0, k);
    expect(plan.replaced).toEqual([...lowest([1, 2, 3, 4], 2), ...lowest([5, 6], 1)].sort((a, b) => a - b));
  });
});
