import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '@scaleot/model';
import { idsTensor, microConfig, randomIds, randomModel, rng } from './helpers.js';

// Central differences in float32: loss values carry ~1e-6 relative rounding, so ε = 1e-2 keeps the
// rounding part near 1e-4 while the O(ε²) truncation error stays below that on this O(1) model.
const EPS = 1e-2;
const ABS_TOL = 1e-4;
const REL_TOL = 1e-2;

describe('gradients vs central finite differences (cpu, d=16, 2 layers, vocab 32)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('agree for every parameter kind, wte through the embedding and through the tied head', async () => {
    const config = microConfig();
    const { model } = randomModel(config, 7);
    const absent = [30, 31]; // wte rows only reachable through the tied head
    const rows = randomIds(2, 12, config.vocabSize, 3, absent);
    const present = rows[0][0];
    const ids = idsTensor(rows);
    const mask = tf.tensor2d(rows.map((r) => r.slice(1).map((_, i) => (i % 3 === 2 ? 0 : 1))), [2, 11]);
    const weights = model.namedWeights();
    const vars = [...weights.values()];
    // Loss in float64 on the JS side from the per-token NLLs (less rounding than a float32 tf.sum).
    const lossF64 = (): number => {
      const nll = tf.tidy(() => model.tokenNll(ids));
      const n = nll.dataSync();
      const m = mask.dataSync();
      nll.dispose();
      let s = 0;
      let c = 0;
      for (let i = 0; i < n.length; i++) {
        s += n[i] * m[i];
        c += m[i];
      }
      return s / c;
    };
    const { value, grads } = tf.variableGrads(() => model.loss(ids, mask), vars);
    expect(Math.abs(value.dataSync()[0] - lossF64())).toBeLessThan(1e-5);

    const r = rng(11);
    const coords: [string, number][] = [];
    const d = config.hiddenSize;
    coords.push(['transformer.wte.weight', present * d + 3], ['transformer.wte.weight', absent[0] * d + 5], ['transformer.wte.weight', absent[1] * d + 0]);
    coords.push(['transformer.wpe.weight', 0 * d + 1], ['transformer.wpe.weight', 11 * d + 7]);
    for (const [name, v] of weights) {
      if (name.includes('wte') || name.includes('wpe')) continue;
      for (let k = 0; k < 2; k++) coords.push([name, Math.floor(r() * v.size)]);
    }
    let worst = 0;
    for (const [name, idx] of coords) {
      const v = weights.get(name)!;
      const g = grads[v.name].dataSync()[idx];
      const orig = v.dataSync().slice();
      const at = (delta: number): number => {
        const p = orig.slice();
        p[idx] += delta;
        v.assign(tf.tensor(p, v.shape));
        return lossF64();
      };
      const fd = (at(EPS) - at(-EPS)) / (2 * EPS);
      v.assign(tf.tensor(orig, v.shape));
      const err = Math.abs(fd - g);
      worst = Math.max(worst, err / (ABS_TOL + REL_TOL * Math.abs(fd)));
      expect(err, `${name}[${idx}]: analytic ${g}, finite difference ${fd}`).toBeLessThan(ABS_TOL + REL_TOL * Math.abs(fd));
    }
    // The head-only wte rows must have a real gradient (softmax mass on absent tokens), not zero.
    const wteGrad = grads[weights.get('transformer.wte.weight')!.name].dataSync();
    expect(Math.abs(wteGrad[absent[0] * d + 5])).toBeGreaterThan(1e-6);
    console.log(`finite differences: ${coords.length} coordinates, worst err/tol ${worst.toFixed(3)}`);
    tf.dispose([value, ...Object.values(grads), ids, mask]);
    model.dispose();
  });
});
