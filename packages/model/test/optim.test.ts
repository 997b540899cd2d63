import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, Trainer, clipByGlobalNorm, computeGradients, tokenBatch, useBackend, warmupCosine } from '@scaleot/model';
import { microConfig, randomIds, randomModel, rng, snapshot } from './helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** torch.optim.AdamW in float64. */
function adamwRef(p: Float64Array, g: Float64Array[], lrs: number[], o: { b1: number; b2: number; eps: number; wd: number }): Float64Array {
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  const x = Float64Array.from(p);
  g.forEach((grad, s) => {
    const t = s + 1;
    const lr = lrs[s];
    for (let i = 0; i < x.length; i++) {
      x[i] *= 1 - lr * o.wd;
      m[i] = o.b1 * m[i] + (1 - o.b1) * grad[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * grad[i] * grad[i];
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - o.b2 ** t) + o.eps;
      x[i] -= (lr / (1 - o.b1 ** t)) * (m[i] / denom);
    }
  });
  return x;
}

describe('AdamW', () => {
  it('matches a float64 reference over 5 steps, with decay on matrices only (rel 1e-5)', () => {
    const r = rng(1);
    const mat = tf.variable(tf.tensor2d(Array.from({ length: 12 }, () => r() - 0.5), [3, 4]));
    const bias = tf.variable(tf.tensor1d(Array.from({ length: 4 }, () => r() - 0.5)));
    const o = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };
    const opt = new AdamW(
      new Map<string, tf.Variable>([
        ['w', mat],
        ['b', bias],
      ]),
      { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd },
    );
    expect(opt.decays('w')).toBe(true);
    expect(opt.decays('b')).toBe(false);
    const p0w = Float64Array.from(mat.dataSync());
    const p0b = Float64Array.from(bias.dataSync());
    const gw: Float64Array[] = [];
    const gb: Float64Array[] = [];
    const lrs = [1e-2, 2e-2, 5e-3, 1e-2, 3e-2];
    for (const lr of lrs) {
      const a = Float32Array.from({ length: 12 }, () => (r() - 0.5) * 2);
      const c = Float32Array.from({ length: 4 }, () => (r() - 0.5) * 1e-3);
      gw.push(Float64Array.from(a));
      gb.push(Float64Array.from(c));
      const grads = new Map<string, tf.Tensor>([
        ['w', tf.tensor2d(a, [3, 4])],
        ['b', tf.tensor1d(c)],
      ]);
      opt.apply(grads, lr);
      tf.dispose([...grads.values()]);
    }
    const wantW = adamwRef(p0w, gw, lrs, o);
    const wantB = adamwRef(p0b, gb, lrs, { ...o, wd: 0 });
    const gotW = mat.dataSync();
    const gotB = bias.dataSync();
    for (let i = 0; i < 12; i++) expect(Math.abs(gotW[i] - wantW[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(wantW[i])));
    for (let i = 0; i < 4; i++) expect(Math.abs(gotB[i] - wantB[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(wantB[i])));
    // The parameters moved by more than the tolerance (the test can fail).
    expect(Math.abs(gotW[0] - p0w[0])).toBeGreaterThan(1e-3);

    // State round trip: a fresh optimizer with the saved state continues identically.
    const state = opt.getState();
    expect(state.step).toBe(5);
    const mat2 = tf.variable(mat.clone());
    const bias2 = tf.variable(bias.clone());
    const opt2 = new AdamW(
      new Map<string, tf.Variable>([
        ['w', mat2],
        ['b', bias2],
      ]),
      { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd },
    );
    opt2.setState(state);
    const g = new Map<string, tf.Tensor>([
      ['w', tf.ones([3, 4])],
      ['b', tf.ones([4])],
    ]);
    opt.apply(g, 1e-2);
    opt2.apply(g, 1e-2);
    expect(Array.from(mat2.dataSync())).toEqual(Array.from(mat.dataSync()));
    expect(Array.from(bias2.dataSync())).toEqual(Array.from(bias.dataSync()));
    expect(() => opt2.setState({ step: 1, m: {}, v: {} })).toThrow(/optimizer state/);
    tf.dispose([...g.values(), mat, bias, mat2, bias2]);
    opt.dispose();
    opt2.dispose();
  });
});

describe('warmupCosine', () => {
  it('warms up linearly, decays by a cosine to the floor, then stays there', () => {
    const lr = warmupCosine({ warmupSteps: 10, totalSteps: 110, peakLr: 1e-3, finalLrFraction: 0.1 });
    expect(lr(0)).toBeCloseTo(1e-4, 12);
    expect(lr(4)).toBeCloseTo(5e-4, 12);
    expect(lr(9)).toBeCloseTo(1e-3, 12);
    expect(lr(10)).toBeCloseTo(1e-3, 12);
    expect(lr(60)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5, 12);
    expect(lr(35)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI * 0.25)), 12);
    expect(lr(110)).toBeCloseTo(1e-4, 12);
    expect(lr(500)).toBeCloseTo(1e-4, 12);
    expect(() => warmupCosine({ warmupSteps: 5, totalSteps: 2, peakLr: 1 })).toThrow(/warmupSteps/);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales by maxNorm / norm when above, leaves gradients alone below', () => {
    const a = tf.tensor1d([3, 0]);
    const b = tf.tensor2d([[0, 4]]);
    const { grads, norm } = clipByGlobalNorm([a, b], 1);
    expect(norm).toBeCloseTo(5, 5);
    expect(Array.from(grads[0].dataSync())).toEqual([expect.closeTo(0.6, 5), 0]);
    expect(Array.from(grads[1].dataSync())).toEqual([0, expect.closeTo(0.8, 5)]);
    const big = clipByGlobalNorm(new Map([['a', a]]), 10);
    expect(big.norm).toBeCloseTo(3, 5);
    expect(Array.from(big.grads.get('a')!.dataSync())).toEqual([3, 0]);
    tf.dispose([a, b, ...grads, ...big.grads.values()]);
  });
});

describe('Trainer', () => {
  it('accumulating 4 micro-batches gives the big-batch gradient (token-weighted, with a loss mask)', () => {
    const config = microConfig();
    const { model } = randomModel(config, 5);
    const rows = randomIds(8, 10, config.vocabSize, 9);
    const r = rng(2);
    const mask = rows.map(() => Array.from({ length: 9 }, () => (r() < 0.6 ? 1 : 0)));
    mask[3] = mask[3].map(() => 0); // a micro-batch row with no targets at all
    const batch = tokenBatch(rows, mask);
    const tokens = mask.flat().reduce((a: number, b) => a + b, 0);
    const vars = model.namedWeights();
    const big = computeGradients(model, vars, batch, tokens, 8);
    const small = computeGradients(model, vars, batch, tokens, 2);
    const ids = tf.tensor2d(rows, [8, 10], 'int32');
    const m = tf.tensor2d(mask, [8, 9]);
    const direct = model.loss(ids, m);
    expect(big.lossSum / tokens).toBeCloseTo(direct.dataSync()[0], 5);
    expect(small.lossSum).toBeCloseTo(big.lossSum, 4);
    let maxAbs = 0;
    let maxDiff = 0;
    for (const [name, g] of big.grads) {
      const a = g.dataSync();
      const b = small.grads.get(name)!.dataSync();
      for (let i = 0; i < a.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(a[i]));
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      }
    }
    expect(maxAbs).toBeGreaterThan(1e-2);
    expect(maxDiff).toBeLessThan(1e-6 * Math.max(1, maxAbs));
    tf.dispose([...big.grads.values(), ...small.grads.values(), ids, m, direct]);
    model.dispose();
  });

  it('trains a chosen parameter group only, lowers the loss, and leaks no tensors across steps', async () => {
    const config = microConfig();
    const { model } = randomModel(config, 6);
    const groups = model.parameterGroups();
    expect([...groups.keys()]).toEqual(['embeddings', 'block.0', 'block.1', 'head']);
    const named = model.namedWeights();
    const trainSet = new Set(groups.get('block.1'));
    const variables = new Map([...named].filter(([, v]) => trainSet.has(v)));
    expect(variables.size).toBe(12);
    const seen: number[] = [];
    const trainer = new Trainer(model, { variables, microBatchSize: 2, gradClip: 1, adamW: { lr: 1e-2 }, onStep: (i) => seen.push(i.loss) });
    const batch = tokenBatch(randomIds(4, 12, config.vocabSize, 4));
    const before = await snapshot(model);
    await trainer.step(batch);
    const n0 = tf.memory().numTensors;
    for (let s = 0; s < 6; s++) await trainer.step(batch);
    expect(tf.memory().numTensors).toBe(n0);
    expect(seen.length).toBe(7);
    expect(seen[6]).toBeLessThan(seen[0]);
    const after = await snapshot(model);
    for (const [name, w] of before) {
      const changed = w.some((x, i) => x !== after.get(name)![i]);
      expect(changed, name).toBe(name.startsWith('transformer.h.1.'));
    }
    trainer.dispose();
    model.dispose();
  });
});
