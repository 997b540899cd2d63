import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createRng } from '@scaleot/data';
import { loadModel, sliceBatch, tokenBatch, useBackend } from '@scaleot/model';
import {
  Harmonizer,
  harmonizerGradientStep,
  layerImportance,
  readStage1,
  reinforceUpdate,
  runStage1,
  sampleGroupedMask,
  ScaleotMethodError,
  type Stage1StepLog,
} from '@scaleot/scaleot';
import { microConfig, randomModel, randomStream, savedRandomModel, tempDir } from './helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('importance scores: pure pieces', () => {
  it('grouped masks keep the top half of every group raw and leave the adapter alone', () => {
    const scores = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const groups = [[1, 2, 3, 4], [5, 6, 7, 8]];
    const rng = createRng(3);
    for (let k = 0; k < 20; k++) {
      const mask = sampleGroupedMask(scores, groups, rng);
      expect(mask[0]).toBe(1);
      expect(mask[9]).toBe(1);
      for (const g of groups) expect(g.reduce((s, i) => s + mask[i], 0)).toBe(2);
    }
    // p_i = u_i·σ(s_i): a saturated score keeps block 2 raw unless both blocks 1 and 4 beat it,
    // P = 1 − 1/6 (expected 167 of 200); at the floor, block 3 is (almost) never kept.
    const biased = scores.slice();
    biased[2] = 6;
    biased[3] = -6;
    let kept2 = 0;
    let kept3 = 0;
    for (let k = 0; k < 200; k++) {
      const mask = sampleGroupedMask(biased, groups, rng);
      kept2 += mask[2];
      kept3 += mask[3];
    }
    expect(kept2).toBeGreaterThan(145);
    expect(kept3).toBeLessThan(30);
  });

  it('reinforceUpdate: standardised advantages, η·Σ A_j m_ij, clamp', () => {
    const groups = [[1, 2]];
    const masks = [
      [1, 1, 0],
      [1, 0, 1],
    ];
    const { scores, advantages } = reinforceUpdate([0, 0, 5.99], masks, [1, 3], groups, { eta: 0.5 });
    expect(advantages[0]).toBeCloseTo(1, 6);
    expect(advantages[1]).toBeCloseTo(-1, 6);
    expect(scores[1]).toBeCloseTo(0.5, 6);
    expect(scores[2]).toBeCloseTo(5.49, 6);
    expect(scores[0]).toBe(0);
    expect(reinforceUpdate([0, 5.9, 0], [[1, 1, 1], [1, 0, 0]], [0, 1], groups, { eta: 1 }).scores[1]).toBe(6);
    expect(() => reinforceUpdate([0, 0, 0], masks, [1], groups)).toThrow(ScaleotMethodError);
  });
});

describe('harmonizer', () => {
  it('is the identity at init and its stored names follow harmonizers.<i>.*', () => {
    const h = new Harmonizer(3, 16, { seed: 1 });
    const x = tf.randomNormal([2, 5, 16], 0, 1, 'float32', 4) as tf.Tensor3D;
    const y = h.apply(x);
    expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
    expect([...h.namedVariables().keys()]).toEqual(['ln.weight', 'ln.bias', 'down.weight', 'down.bias', 'up.weight', 'up.bias'].map((n) => `harmonizers.3.${n}`));
    expect(h.rank).toBe(8);
    const down = h.downWeight.dataSync() as Float32Array;
    const std = Math.sqrt(down.reduce((s, v) => s + v * v, 0) / down.length);
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
    tf.dispose([x, y]);
    h.dispose();
  });

  it('gradient step: only active harmonizers get gradients; shard gradients sum to the batch gradient', () => {
    const model = randomModel(microConfig(6), 5);
    const harmonizers = new Map([1, 2, 3, 4].map((i) => [i, new Harmonizer(i, 16, { seed: 2 })] as const));
    // Move W_up off zero so W_down gets a gradient too.
    for (const h of harmonizers.values()) h.upWeight.assign(tf.randomNormal(h.upWeight.shape, 0, 0.1, 'float32', h.sourceIndex));
    const mask = [1, 0, 1, 0, 1, 1];
    const rows = Array.from({ length: 4 }, (_, i) => randomStream(17, 48, 100 + i));
    const batch = tokenBatch(rows);
    const full = harmonizerGradientStep(model, harmonizers, mask, batch, { alignWeight: 0.5, microBatchSize: 4 });
    expect([...full.grads.keys()].every((n) => n.startsWith('harmonizers.1.') || n.startsWith('harmonizers.3.'))).toBe(true);
    expect(full.grads.size).toBe(12);
    const tokens = batch.rows * (batch.seqLen - 1);
    const a = harmonizerGradientStep(model, harmonizers, mask, sliceBatch(batch, 0, 1), { alignWeight: 0.5, tokenNormalizer: tokens, rowsNormalizer: 4, microBatchSize: 1 });
    const b = harmonizerGradientStep(model, harmonizers, mask, sliceBatch(batch, 1, 4), { alignWeight: 0.5, tokenNormalizer: tokens, rowsNormalizer: 4, microBatchSize: 2 });
    expect(a.nllSum + b.nllSum).toBeCloseTo(full.nllSum, 3);
    for (const [name, g] of full.grads) {
      const sum = tf.add(a.grads.get(name)!, b.grads.get(name)!);
      const diff = tf.max(tf.abs(tf.sub(sum, g))).dataSync()[0];
      const scale = tf.max(tf.abs(g)).dataSync()[0];
      expect(scale).toBeGreaterThan(0);
      // The alignment term is a ratio per micro-batch, so shards match up to that (small) difference.
      expect(diff).toBeLessThan(0.05 * scale + 1e-6);
      sum.dispose();
    }
    const lmOnly = harmonizerGradientStep(model, harmonizers, mask, batch, { microBatchSize: 4 });
    const la = harmonizerGradientStep(model, harmonizers, mask, sliceBatch(batch, 0, 2), { tokenNormalizer: tokens, microBatchSize: 1 });
    const lb = harmonizerGradientStep(model, harmonizers, mask, sliceBatch(batch, 2, 4), { tokenNormalizer: tokens, microBatchSize: 2 });
    for (const [name, g] of lmOnly.grads) {
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.add(la.grads.get(name)!, lb.grads.get(name)!), g))).dataSync()[0]);
      expect(diff).toBeLessThan(1e-6);
    }
    for (const r of [full, a, b, lmOnly, la, lb]) tf.dispose([...r.grads.values()]);
    for (const h of harmonizers.values()) h.dispose();
    model.dispose();
  });
});

function withoutTimes(log: Stage1StepLog[]): unknown[] {
  return log.map(({ seconds: _s, ...rest }) => rest);
}

describe('stage 1', () => {
  it('resuming from a checkpoint continues exactly as an uninterrupted run', async () => {
    const modelDir = await savedRandomModel('resume', 11);
    const streams = { train: randomStream(600, 48, 1), val: randomStream(300, 48, 2) };
    const settings = { modelDir, streams, nAdapter: 2, steps: 5, batchSize: 4, microBatchSize: 2, rlBatchSize: 4, warmupSteps: 2, alignWeight: 1, seed: 9, checkpointEvery: 2 };
    const outA = join(tempDir('resume-a'), 'stage1');
    const outB = join(tempDir('resume-b'), 'stage1');
    const a = await runStage1({ ...settings, outDir: outA });
    expect(a.completed).toBe(true);
    const partial = await runStage1({ ...settings, outDir: outB, stopAfterStep: 3 });
    expect(partial.completed).toBe(false);
    expect(existsSync(join(outB, 'manifest.json'))).toBe(false);
    expect(existsSync(join(outB, 'checkpoint', 'state.json'))).toBe(true);
    const b = await runStage1({ ...settings, outDir: outB });
    expect(b.completed).toBe(true);
    expect(b.resumedFrom).toBe(3);
    expect(b.scores).toEqual(a.scores);
    expect(withoutTimes(b.log)).toEqual(withoutTimes(a.log));
    expect(readFileSync(join(outB, 'harmonizers.safetensors')).equals(readFileSync(join(outA, 'harmonizers.safetensors')))).toBe(true);
    expect(existsSync(join(outB, 'checkpoint'))).toBe(false);
    const artifacts = await readStage1(outB);
    expect(artifacts.manifest.layout.middle).toEqual([1, 2, 3, 4]);
    expect(artifacts.importance[0]).toMatchObject({ role: 'adapter', score: null });
    expect(readFileSync(join(outB, 'stage1-log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(5);
    const plot = await layerImportance(outB);
    expect(plot.trajectories.map((t) => t.step)).toEqual([1, 2, 3, 4, 5]);
    expect(plot.trajectories[4].scores['1']).toBe(b.scores[1]);
    // The scores moved and the harmonizers trained.
    expect(a.scores.some((s) => s !== 0)).toBe(true);
    expect(artifacts.harmonizers.get('harmonizers.1.up.weight')!.data.some((v) => v !== 0)).toBe(true);
  });

  it('the score of a block whose replacement destroys the loss rises above the others', async () => {
    const critical = 3;
    // Near-identity blocks (std 0.02) except block 3, whose MLP dominates the residual stream; a large
    // embedding makes the tied head's predictions sharp. The data are sampled from the model itself, so
    // the model with block 3 predicts them well and without it poorly.
    const stdFor = (name: string): number | undefined => {
      if (name === 'transformer.wte.weight') return 1;
      if (new RegExp(`^transformer\\.h\\.${critical}\\.mlp\\.c_(fc|proj)\\.weight$`).test(name)) return 0.8;
      if (/\.(attn|mlp)\.c_\w+\.weight$/.test(name)) return 0.02;
      return undefined;
    };
    const modelDir = await savedRandomModel('critical', 21, 6, stdFor);
    const model = await loadModel(modelDir);
    const sample = (seed: number, chains: number, length: number): Int32Array => {
      const rng = createRng(seed);
      const seqs = Array.from({ length: chains }, () => [rng.uniformInt(0, 48)]);
      for (let t = 1; t < length; t++) {
        const ctx = seqs.map((s) => s.slice(-16));
        const len = ctx[0].length;
        const probs = tf.tidy(() => tf.softmax(tf.slice(model.logits(tf.tensor2d(ctx, [chains, len], 'int32')), [0, len - 1, 0], [chains, 1, 48])).dataSync());
        seqs.forEach((s, c) => {
          let u = rng.next();
          let k = 0;
          while (k < 47 && u >= probs[c * 48 + k]) u -= probs[c * 48 + k++];
          s.push(k);
        });
      }
      return Int32Array.from(seqs.flat());
    };
    const streams = { train: sample(1, 16, 40), val: sample(2, 16, 40) };
    model.dispose();
    const out = join(tempDir('critical'), 'stage1');
    const r = await runStage1({ modelDir, outDir: out, streams, nAdapter: 2, steps: 12, batchSize: 4, rlBatchSize: 16, eta: 0.2, lr: 1e-3, alignWeight: 0, seed: 4 });
    const middle = [1, 2, 3, 4];
    const others = middle.filter((i) => i !== critical).map((i) => r.scores[i]);
    expect(r.scores[critical]).toBeGreaterThan(0);
    expect(r.scores[critical]).toBeGreaterThan(Math.max(...others));
    // Candidates that replaced the critical block lost more.
    const withCritical = r.log.flatMap((e) => e.rollouts!.replaced.map((rep, j) => ({ replaced: rep.includes(critical), loss: e.rollouts!.losses[j] })));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(withCritical.filter((c) => c.replaced).map((c) => c.loss))).toBeGreaterThan(mean(withCritical.filter((c) => !c.replaced).map((c) => c.loss)));
  });

  it('rejects impossible settings with typed errors and writes nothing', async () => {
    const modelDir = await savedRandomModel('bad-stage1', 12);
    const streams = { train: randomStream(200, 48, 1), val: randomStream(200, 48, 2) };
    const out = join(tempDir('bad-stage1'), 'stage1');
    await expect(runStage1({ modelDir, outDir: out, streams, nAdapter: 6 })).rejects.toMatchObject({ code: 'NO_MIDDLE_BLOCKS' });
    await expect(runStage1({ modelDir, outDir: out, streams, nAdapter: 2, candidates: 1 })).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(runStage1({ modelDir, outDir: out, streams, nAdapter: 2, seqLen: 64 })).rejects.toBeInstanceOf(ScaleotMethodError);
    expect(existsSync(out)).toBe(false);
  });
});
