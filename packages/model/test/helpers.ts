import * as tf from '@tensorflow/tfjs';
import { createModel, gpt2Config, type CausalLM, type Gpt2Config } from '@scaleot/model';
import { gaussian, mulberry32 } from '../../../test/support/numeric.js';

export { gaussian };

/** mulberry32: deterministic test randomness. */
export const rng = mulberry32;

export const microConfig = (): Gpt2Config => gpt2Config({ vocabSize: 32, nPositions: 16, nEmbd: 16, nLayer: 2, nHead: 2 });

/**
 * A small model with O(1) activations everywhere (std-0.02 init makes most gradients vanish, which
 * would let bugs hide): weights std `scale`, LN gains around 1, non-zero biases.
 */
export function randomModel(config: Gpt2Config, seed: number, scale = 0.3): { model: CausalLM; weights: Map<string, Float32Array> } {
  const shapes = createModel(config, undefined, { seed });
  const r = rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, v] of shapes.namedWeights()) {
    const data = new Float32Array(v.size);
    const isGain = /ln_\d\.weight$|ln_f\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) data[i] = (isGain ? 1 : 0) + gaussian(r) * (isGain ? 0.2 : v.rank === 1 ? 0.1 : scale);
    weights.set(name, data);
  }
  shapes.dispose();
  return { model: createModel(config, weights), weights };
}

export function randomIds(rows: number, len: number, vocab: number, seed: number, avoid: number[] = []): number[][] {
  const r = rng(seed);
  const out: number[][] = [];
  for (let i = 0; i < rows; i++) {
    const row: number[] = [];
    while (row.length < len) {
      const id = Math.floor(r() * vocab);
      if (!avoid.includes(id)) row.push(id);
    }
    out.push(row);
  }
  return out;
}

export async function snapshot(model: CausalLM): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.namedWeights()) out.set(name, ((await v.data()) as Float32Array).slice());
  return out;
}

export function idsTensor(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
}
