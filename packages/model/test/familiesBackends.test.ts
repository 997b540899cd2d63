import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadModel, useBackend } from '@scaleot/model';
import { familyDir, type FamilyModel } from './familiesFixtures.js';

// The wasm backend runs its own kernels (and scaleot's re-registered ones) for every op of the new
// families, including their gradients: Reverse (rotary), 5-D Transpose (grouped queries), Cumsum
// (OPT positions), Gather's backward. The cpu backend is the reference.

/** Gradients of a padded, re-positioned batch's loss with respect to every weight, as host arrays. */
async function gradients(model: FamilyModel, backend: 'wasm' | 'cpu'): Promise<Map<string, Float32Array>> {
  await useBackend(backend);
  const lm = await loadModel(familyDir(model));
  const ids = tf.tensor2d([[5, 17, 300, 4095, 12, 9, 1, 2048, 77, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], [2, 10], 'int32');
  const attentionMask = tf.tensor2d([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], [2, 10], 'int32');
  const positionIds = model === 'opt' ? undefined : tf.tensor2d([[1, 1, 1, 0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], [2, 10], 'int32');
  const weights = lm.namedWeights();
  const keep = tf.tensor2d([[0, 0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]], [2, 9]);
  const { value, grads } = tf.variableGrads(() => tf.div(tf.sum(tf.mul(lm.tokenNll(ids, { attentionMask, positionIds }), keep)), tf.sum(keep)), [...weights.values()]);
  const out = new Map<string, Float32Array>([['loss', value.dataSync() as Float32Array]]);
  for (const [name, v] of weights) out.set(name, grads[v.name].dataSync() as Float32Array);
  tf.dispose([value, ...Object.values(grads), ids, attentionMask, keep, ...(positionIds ? [positionIds] : [])]);
  lm.dispose();
  return out;
}

describe('wasm gradients equal cpu gradients', () => {
  for (const model of ['opt', 'llama', 'llama3'] as const) {
    it(`${model}: a left-padded batch, every weight`, { timeout: 300_000 }, async () => {
      const wasm = await gradients(model, 'wasm');
      const cpu = await gradients(model, 'cpu');
      expect([...wasm.keys()]).toEqual([...cpu.keys()]);
      let worst = 0;
      let worstAt = "";
      let nonZero = 0;
      for (const [name, g] of cpu) {
        const w = wasm.get(name)!;
        let scale = 0;
        for (const v of g) scale = Math.max(scale, Math.abs(v));
        if (scale > 1e-3) nonZero++;
        for (let i = 0; i < g.length; i++) {
          const e = Math.abs(w[i] - g[i]) / Math.max(scale, 1e-3);
          if (e > worst) worstAt = `${name}[${i}]: wasm ${w[i]}, cpu ${g[i]}`;
          worst = Math.max(worst, e);
        }
      }
      console.log(`${model}: max |Δgrad| / max(max|grad| of the tensor, 1e-3) ${worst.toExponential(2)} over ${cpu.size - 1} tensors (worst at ${worstAt})`);
      // Everything but the loss itself and OPT's key biases (exactly zero in theory: softmax ignores a shift of every score) is O(1e-2) or more.
      expect(nonZero).toBeGreaterThan(cpu.size * 0.8);
      expect(worst).toBeLessThan(1e-4);
    });
  }
});

describe('no tensors leak across forwards and training steps', () => {
  for (const model of ['opt', 'llama'] as const) {
    it(`${model} on wasm: padded batches with position ids, forward and gradients`, { timeout: 300_000 }, async () => {
      await useBackend('wasm');
      const lm = await loadModel(familyDir(model));
      const ids = tf.tensor2d([[5, 17, 300, 4095, 12, 9], [1, 2, 3, 4, 5, 6]], [2, 6], 'int32');
      const vars = [...lm.namedWeights().values()];
      const step = (): void => {
        // Fresh mask and position tensors each time, as a data loader makes them.
        const attentionMask = tf.tensor2d([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], [2, 6], 'int32');
        const positionIds = tf.tensor2d([[1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]], [2, 6], 'int32');
        tf.dispose(lm.logits(ids, { attentionMask, positionIds }));
        const { value, grads } = tf.variableGrads(() => tf.mean(lm.tokenNll(ids, { attentionMask, positionIds })), vars);
        tf.dispose([value, ...Object.values(grads), attentionMask, positionIds]);
        // And a plain batch (cached default tables and masks).
        tf.dispose(lm.logits(ids));
      };
      step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) step();
      expect(tf.memory().numTensors).toBe(before);
      ids.dispose();
      lm.dispose();
    });
  }
});
