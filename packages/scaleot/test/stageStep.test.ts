import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { crossEntropyPerToken, loadModel, loadStage, sliceBatch, tokenBatch, useBackend, type CausalLM, type PipelineStage } from '@scaleot/model';
import { Harmonizer, harmonizerGradientStep, rolloutLoss, stageBackward, stageMaskedForward, syncHarmonizers, type StageRoundSettings } from '@scaleot/scaleot';
import { FIXTURES_DIR } from '../../../test/support/fixtures.js';
import { randomStream } from './helpers.js';

// Stage 1 split into pipeline stages: the deep LLaMA fixture (GQA, RoPE, BF16 on disk) cut into three
// stages, each holding its blocks and the harmonizers among them, chained forward and backward by
// hand, gives the single-process gradient step and rollout loss.
const LLAMA_24L = join(FIXTURES_DIR, 'models', 'sotu-llama-24l');
const RANGES = [
  { from: 0, to: 7 },
  { from: 7, to: 16 },
  { from: 16, to: 24 },
];
const MIDDLE = Array.from({ length: 20 }, (_, i) => i + 2);
// Replaced blocks on every stage, the first (5) and the last (21) included.
const REPLACED = [3, 5, 8, 12, 15, 16, 19, 21];
const MICRO = 2;
// Gradients: relative to the largest entry of each tensor (float32; the pipeline runs the same ops on
// the same values, so the difference is summation order at most).
const GRAD_TOL = 1e-5;

let model: CausalLM;
let stages: PipelineStage[];
const harmonizers = new Map<number, Harmonizer>();

beforeAll(async () => {
  await useBackend('wasm');
  model = await loadModel(LLAMA_24L);
  stages = await Promise.all(RANGES.map(async (r) => (await loadStage(LLAMA_24L, r, { trainable: false })).stage));
  for (const i of MIDDLE) {
    const h = new Harmonizer(i, 128, { rank: 16, eps: 1e-5, seed: 3 });
    // Move W_up off zero so W_down gets a gradient too.
    h.upWeight.assign(tf.randomNormal(h.upWeight.shape, 0, 0.05, 'float32', i));
    harmonizers.set(i, h);
  }
});

afterAll(() => {
  model?.dispose();
  for (const s of stages ?? []) s.dispose();
  for (const h of harmonizers.values()) h.dispose();
});

/** Each stage's own harmonizers, sent as the coordinator sends them (plain arrays, synced into fresh ones). */
function stageHarmonizers(): Map<number, Harmonizer>[] {
  return RANGES.map((r) => {
    const weights = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [i, h] of harmonizers) if (i >= r.from && i < r.to) for (const [n, v] of h.namedVariables()) weights.set(n, { data: v.dataSync() as Float32Array, shape: v.shape });
    const own = new Map<number, Harmonizer>();
    syncHarmonizers(own, weights, 128, 1e-5);
    return own;
  });
}

describe('stage 1 through pipeline stages', () => {
  it('chained stage backward passes equal harmonizerGradientStep (align on, micro-batches accumulated)', () => {
    const mask = new Array<number>(24).fill(1);
    for (const i of REPLACED) mask[i] = 0;
    const batch = tokenBatch(Array.from({ length: 4 }, (_, i) => randomStream(33, 4096, 40 + i)));
    const single = harmonizerGradientStep(model, harmonizers, mask, batch, { alignWeight: 0.5, microBatchSize: MICRO });

    const own = stageHarmonizers();
    const settings: StageRoundSettings = { mask, tokenNorm: batch.rows * (batch.seqLen - 1), rowsNorm: batch.rows, alignWeight: 0.5, alignCount: REPLACED.length };
    const acc = new Map<string, tf.Tensor>();
    let nllSum = 0;
    let alignSum = 0;
    for (let from = 0; from < batch.rows; from += MICRO) {
      const part = sliceBatch(batch, from, from + MICRO);
      const ids = tf.tensor2d(part.ids, [part.rows, part.seqLen], 'int32');
      const inputs = tf.slice(ids, [0, 0], [part.rows, part.seqLen - 1]);
      const targets = tf.slice(ids, [0, 1], [part.rows, part.seqLen - 1]) as tf.Tensor2D;
      // Forward: each stage keeps only its input.
      const stageInputs: tf.Tensor[] = [inputs];
      for (let s = 0; s < stages.length - 1; s++) stageInputs.push(stageMaskedForward(stages[s], own[s], mask, stageInputs[s]));
      // Backward, last stage first.
      let upstream: tf.Tensor3D | undefined;
      let alignPart = 0;
      for (let s = stages.length - 1; s >= 0; s--) {
        const before = tf.memory().numTensors;
        const r = stageBackward(stages[s], own[s], settings, { input: stageInputs[s], targets: s === stages.length - 1 ? targets : undefined, upstream, inputGrad: s > 0 });
        // Nothing left behind but what it returns (a stage runs thousands of these).
        expect(tf.memory().numTensors - before).toBe(r.grads.size + (r.inputGrad ? 1 : 0));
        upstream?.dispose();
        upstream = r.inputGrad;
        nllSum += r.nllSum;
        alignPart += r.align;
        for (const [n, g] of r.grads) {
          const prev = acc.get(n);
          acc.set(n, prev ? tf.add(prev, g) : g);
          if (prev) {
            prev.dispose();
            g.dispose();
          }
        }
      }
      alignSum += alignPart * part.rows;
      tf.dispose([ids, inputs, targets, ...stageInputs.slice(1)]);
    }

    expect(nllSum).toBeCloseTo(single.nllSum, 2);
    expect(Math.abs(alignSum - single.alignSum)).toBeLessThan(1e-5 * Math.abs(single.alignSum) + 1e-7);
    expect(single.alignSum).toBeGreaterThan(0);
    expect([...acc.keys()].sort()).toEqual([...single.grads.keys()].sort());
    expect(acc.size).toBe(6 * REPLACED.length);
    for (const [name, g] of single.grads) {
      const scale = tf.max(tf.abs(g)).dataSync()[0];
      const diff = tf.max(tf.abs(tf.sub(acc.get(name)!, g))).dataSync()[0];
      expect(scale, name).toBeGreaterThan(0);
      expect(diff / scale, name).toBeLessThan(GRAD_TOL);
    }
    tf.dispose([...acc.values(), ...single.grads.values()]);
    for (const m of own) for (const h of m.values()) h.dispose();
  });

  it('chained masked forwards give rolloutLoss', () => {
    const mask = new Array<number>(24).fill(1);
    for (const i of [2, 6, 9, 14, 17, 20]) mask[i] = 0;
    const batch = tokenBatch(Array.from({ length: 3 }, (_, i) => randomStream(33, 4096, 70 + i)));
    const single = rolloutLoss(model, harmonizers, mask, batch, 3);
    const own = stageHarmonizers();
    const loss = tf.tidy(() => {
      const ids = tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
      let h: tf.Tensor = tf.slice(ids, [0, 0], [batch.rows, batch.seqLen - 1]);
      for (let s = 0; s < stages.length; s++) h = stageMaskedForward(stages[s], own[s], mask, h);
      return stages[2].tokenNll(h as tf.Tensor3D, tf.slice(ids, [0, 1], [batch.rows, batch.seqLen - 1]) as tf.Tensor2D).sum().div(batch.rows * (batch.seqLen - 1));
    });
    expect(Math.abs(loss.dataSync()[0] - single) / single).toBeLessThan(1e-6);
    loss.dispose();
    for (const m of own) for (const h of m.values()) h.dispose();
  });

  it('chained stage backward passes with every weight trained equal the whole model\'s gradients (full fine-tuning)', () => {
    const batch = tokenBatch(Array.from({ length: 2 }, (_, i) => randomStream(17, 4096, 90 + i)));
    const mask = new Float32Array(batch.rows * (batch.seqLen - 1)).map((_, k) => (k % 5 === 0 ? 0 : 1));
    const tokens = mask.reduce((a, b) => a + b, 0);
    const ids = tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
    const inputs = tf.slice(ids, [0, 0], [batch.rows, batch.seqLen - 1]);
    const targets = tf.slice(ids, [0, 1], [batch.rows, batch.seqLen - 1]) as tf.Tensor2D;
    const lossMask = tf.tensor2d(mask, [batch.rows, batch.seqLen - 1]);
    const weights = new Map(model.namedWeights());
    const single = tf.variableGrads(() => tf.div(tf.sum(tf.mul(crossEntropyOf(model, inputs, targets), lossMask)), tokens) as tf.Scalar, [...weights.values()]);
    const settings: StageRoundSettings = { mask: [], tokenNorm: tokens, rowsNorm: batch.rows, alignWeight: 0, alignCount: 1 };
    const stageInputs: tf.Tensor[] = [inputs];
    for (let s = 0; s < stages.length - 1; s++) stageInputs.push(stages[s].forward(stageInputs[s]));
    const got = new Map<string, tf.Tensor>();
    let upstream: tf.Tensor3D | undefined;
    for (let s = stages.length - 1; s >= 0; s--) {
      const r = stageBackward(stages[s], new Map(), settings, { input: stageInputs[s], targets: s === 2 ? targets : undefined, lossMask: s === 2 ? lossMask : undefined, upstream, inputGrad: s > 0, weights: stages[s].namedWeights() });
      upstream?.dispose();
      upstream = r.inputGrad;
      for (const [n, g] of r.grads) got.set(n, g);
    }
    expect([...got.keys()].sort()).toEqual([...weights.keys()].sort());
    let worst = 0;
    for (const [name, v] of weights) {
      const g = single.grads[v.name];
      const scale = tf.max(tf.abs(g)).dataSync()[0];
      if (scale === 0) continue;
      worst = Math.max(worst, tf.max(tf.abs(tf.sub(got.get(name)!, g))).dataSync()[0] / scale);
    }
    expect(worst).toBeLessThan(GRAD_TOL);
    tf.dispose([ids, inputs, targets, lossMask, single.value, ...Object.values(single.grads), ...got.values(), ...stageInputs.slice(1)]);
  });
});

function crossEntropyOf(m: CausalLM, inputs: tf.Tensor, targets: tf.Tensor2D): tf.Tensor2D {
  return crossEntropyPerToken(m.head(m.runBlocks(m.embed(inputs as tf.Tensor2D))), targets) as tf.Tensor2D;
}
