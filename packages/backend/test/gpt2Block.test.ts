import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyPerToken, geluNew, initBackend } from '@scaleot/backend';
import { expectArraysClose, maxAbs, randomArray, randomInts, runOn } from './helpers.js';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

beforeAll(async () => {
  await initBackend('wasm');
});

const [B, T, D, H, V] = [2, 8, 16, 2, 29];
const HD = D / H;

const paramShapes: Record<string, number[]> = {
  wte: [V, D],
  wpe: [T + 3, D], // longer than the sequence: sliced
  ln1g: [D], ln1b: [D],
  attnW: [D, 3 * D], attnB: [3 * D],
  projW: [D, D], projB: [D],
  ln2g: [D], ln2b: [D],
  fcW: [D, 4 * D], fcB: [4 * D],
  fc2W: [4 * D, D], fc2B: [D],
  lnfg: [D], lnfb: [D],
};
const names = Object.keys(paramShapes);
const paramValues = names.map((name, i) => {
  const values = randomArray(tf.util.sizeFromShape(paramShapes[name]), 100 + i, 0.3);
  if (name.endsWith('g')) for (let j = 0; j < values.length; j++) values[j] += 1; // LayerNorm gains near 1
  return values;
});
const tokens = randomInts(B * T, 7, V);
const targets = randomInts(B * T, 8, V);

function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
}

function linear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [rows, inner] = [tf.util.sizeFromShape(x.shape.slice(0, -1)), x.shape[x.shape.length - 1]];
  return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [rows, inner]), w), b), [...x.shape.slice(0, -1), w.shape[1] as number]);
}

/** One GPT-2 block with tied embeddings and a causal mask: mean next-token NLL. */
function gpt2Loss(params: Record<string, tf.Tensor>, ids: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const p = params;
  let x = tf.add(tf.gather(p.wte, ids), tf.slice(p.wpe, [0, 0], [T, D])); // [B, T, D]

  const h = layerNorm(x, p.ln1g, p.ln1b);
  const [q, k, v] = tf.split(linear(h, p.attnW, p.attnB), 3, -1).map((t) =>
    tf.transpose(tf.reshape(t, [B, T, H, HD]), [0, 2, 1, 3]),
  ); // [B, H, T, HD]
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(HD)); // [B, H, T, T]
  const causal = tf.broadcastTo(tf.cast(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 'bool'), [B, H, T, T]);
  const masked = tf.where(causal, scores, tf.fill([B, H, T, T], -1e9));
  const attended = tf.matMul(tf.softmax(masked), v); // [B, H, T, HD]
  const merged = tf.concat(tf.unstack(attended, 1), -1); // [B, T, H * HD]
  x = tf.add(x, linear(merged, p.projW, p.projB));

  const m = layerNorm(x, p.ln2g, p.ln2b);
  x = tf.add(x, linear(geluNew(linear(m, p.fcW, p.fcB)), p.fc2W, p.fc2B));

  const out = layerNorm(x, p.lnfg, p.lnfb);
  const logits = tf.matMul(tf.reshape(out, [B * T, D]), p.wte, false, true); // tied head
  return tf.mean(crossEntropyPerToken(tf.reshape(logits, [B, T, V]), labels));
}

function lossAndGrads(): tf.Tensor[] {
  const tensors = names.map((name, i) => tf.tensor(paramValues[i], paramShapes[name]));
  const ids = tf.tensor(tokens, [B, T], 'int32');
  const labels = tf.tensor(targets, [B, T], 'int32');
  const f = (...args: tf.Tensor[]) => gpt2Loss(Object.fromEntries(names.map((n, i) => [n, args[i]])), ids, labels);
  const { value, grads } = tf.valueAndGrads(f)(tensors);
  return [value, ...grads];
}

describe('GPT-2 block forward and backward', () => {
  it('gives the same loss and parameter gradients on wasm as on cpu (1e-4)', async () => {
    const expected = await runOn('cpu', lossAndGrads);
    const actual = await runOn('wasm', lossAndGrads);
    expect(actual).toHaveLength(names.length + 1);
    // The loss of a random model is near log(V); its gradients are not all zero.
    expect(Math.abs(actual[0][0] - Math.log(V))).toBeLessThan(1.5);
    expectArraysClose(actual[0], expected[0], 1e-4, 1e-4);
    for (let i = 0; i < names.length; i++) {
      expect(maxAbs(expected[i + 1]), names[i]).toBeGreaterThan(0);
      try {
        expectArraysClose(actual[i + 1], expected[i + 1], 1e-4 * Math.max(1, maxAbs(expected[i + 1])), 1e-4);
      } catch (error) {
        throw new Error(`gradient of ${names[i]}: ${(error as Error).message}`);
      }
    }
  });

  it('frees every intermediate of the step on wasm', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const dataIdsBefore = tf.backend().numDataIds();
    tf.tidy(() => {
      lossAndGrads();
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.backend().numDataIds()).toBe(dataIdsBefore);
  });
});
