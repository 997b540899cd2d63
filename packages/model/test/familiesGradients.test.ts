import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createModel, paddedCausalBias, parseModelConfig, rmsNorm, swiGlu, useBackend, type BlockContext, type CausalLM } from '@scaleot/model';
import { gaussian, rng } from './helpers.js';

// Five-point central differences, O(ε⁴) truncation: ε = 3e-2 keeps the float32 rounding of the forward
// (divided by 12ε) near 1e-5 while truncation stays below 1e-4. The 3-point rule of gradients.test.ts
// sits at the noise floor here: attention blocks have more curvature than a whole-model mean loss.
const EPS = 3e-2;
const ABS_TOL = 1e-4;
const REL_TOL = 1e-2;

beforeAll(async () => {
  await useBackend('cpu');
});

function randomArray(n: number, r: () => number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * gaussian(r);
  return out;
}

/** O(1) activations everywhere (HF-style small init would let gradient bugs hide): norms ≈ 1, biases ≈ 0.1, weights 0.3. */
function randomizeWeights(model: CausalLM, seed: number): void {
  const r = rng(seed);
  for (const [name, v] of model.namedWeights()) {
    const isNorm = /norm\.weight$/.test(name);
    v.assign(tf.tensor(randomArray(v.size, r, isNorm ? 1 : 0, isNorm ? 0.2 : v.rank === 1 ? 0.1 : 0.3), v.shape));
  }
}

/**
 * Analytic gradients of Σ out·R against five-point central differences at sampled coordinates of each variable.
 * The finite differences sum in float64 on the JS side: a float32 sum of O(100) terms would carry
 * ~1e-5 of rounding, several 1e-4 after dividing by 12ε. Returns the worst err/tolerance.
 */
function checkAgainstFiniteDifferences(output: () => tf.Tensor, weights: tf.Tensor, vars: Map<string, tf.Variable>, perVariable: number, seed: number): number {
  const w = weights.dataSync();
  const lossF64 = (): number => {
    const out = tf.tidy(output);
    const o = out.dataSync();
    out.dispose();
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * w[i];
    return s;
  };
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(output(), weights)), [...vars.values()]);
  expect(Math.abs(value.dataSync()[0] - lossF64())).toBeLessThan(1e-3);
  const r = rng(seed);
  let worst = 0;
  for (const [name, v] of vars) {
    const g = grads[v.name].dataSync();
    for (let k = 0; k < Math.min(perVariable, v.size); k++) {
      const idx = Math.floor(r() * v.size);
      const orig = v.dataSync().slice();
      const at = (delta: number): number => {
        const p = orig.slice();
        p[idx] += delta;
        v.assign(tf.tensor(p, v.shape));
        return lossF64();
      };
      const fd = (8 * (at(EPS) - at(-EPS)) - (at(2 * EPS) - at(-2 * EPS))) / (12 * EPS);
      v.assign(tf.tensor(orig, v.shape));
      const tol = ABS_TOL + REL_TOL * Math.abs(fd);
      const err = Math.abs(fd - g[idx]);
      worst = Math.max(worst, err / tol);
      expect(err, `${name}[${idx}]: analytic ${g[idx]}, finite difference ${fd}`).toBeLessThan(tol);
    }
  }
  tf.dispose([value, ...Object.values(grads)]);
  return worst;
}

const TINY_LLAMA = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  // ≠ hidden/heads: q/o widths differ from the residual width.
  head_dim: 6,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  rope_scaling: { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  attention_bias: true,
  mlp_bias: true,
  hidden_act: 'silu',
  tie_word_embeddings: true,
};

const TINY_OPT = {
  model_type: 'opt',
  vocab_size: 40,
  hidden_size: 16,
  ffn_dim: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 32,
  word_embed_proj_dim: 12,
  do_layer_norm_before: true,
  enable_bias: true,
  // ReLU's kink makes ε-differences straddle it at random; its gradient is tfjs's own. GELU exercises the same path.
  activation_function: 'gelu',
};

/**
 * A hand-written-gradient op against finite differences and against autodiff of its composite formula
 * (same function, so the gradients must agree to float32 rounding).
 */
function checkCustomOp(label: string, inputs: Map<string, tf.Variable>, op: () => tf.Tensor, composite: () => tf.Tensor, seed: number): void {
  const r = rng(seed);
  const probe = tf.tidy(op);
  const R = tf.tensor(randomArray(probe.size, r, 0, 1), probe.shape);
  probe.dispose();
  const vars = [...inputs.values()];
  const worst = checkAgainstFiniteDifferences(op, R, inputs, 64, seed + 1);
  const a = tf.variableGrads(() => tf.sum(tf.mul(op(), R)), vars);
  const b = tf.variableGrads(() => tf.sum(tf.mul(composite(), R)), vars);
  expect(Math.abs(a.value.dataSync()[0] - b.value.dataSync()[0])).toBeLessThan(1e-5);
  for (const v of vars) {
    const ga = a.grads[v.name].dataSync();
    const gb = b.grads[v.name].dataSync();
    for (let i = 0; i < ga.length; i++) expect(Math.abs(ga[i] - gb[i])).toBeLessThan(1e-5);
  }
  console.log(`${label} finite differences: worst err/tol ${worst.toFixed(3)}`);
  tf.dispose([R, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads), ...vars]);
}

describe('hand-written gradients (cpu)', () => {
  it('RMSNorm matches finite differences and autodiff of w·x·rsqrt(mean(x²)+eps)', () => {
    const r = rng(3);
    const x = tf.variable(tf.tensor2d(randomArray(6 * 10, r, 0, 1), [6, 10]));
    const w = tf.variable(tf.tensor1d(randomArray(10, r, 1, 0.3)));
    const eps = 1e-6;
    checkCustomOp(
      'RMSNorm',
      new Map<string, tf.Variable>([['x', x], ['w', w]]),
      () => rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, eps),
      () => tf.mul(w, tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.mul(x, x), -1, true), eps)))),
      5,
    );
  });

  it('SwiGLU matches finite differences and autodiff of silu(g)·u', () => {
    const r = rng(8);
    const g = tf.variable(tf.tensor2d(randomArray(5 * 9, r, 0, 2), [5, 9]));
    const u = tf.variable(tf.tensor2d(randomArray(5 * 9, r, 0, 1), [5, 9]));
    checkCustomOp(
      'SwiGLU',
      new Map<string, tf.Variable>([['gate', g], ['up', u]]),
      () => swiGlu(g as tf.Tensor2D, u as tf.Tensor2D),
      () => tf.mul(tf.mul(g, tf.sigmoid(g)), u),
      6,
    );
  });
});

describe('whole-block gradients vs central finite differences (cpu)', () => {
  const cases: Array<{ name: string; raw: Record<string, unknown>; padded: boolean }> = [
    { name: 'LLaMA (GQA 4/2, head_dim 6, llama3 RoPE, biases), plain causal', raw: TINY_LLAMA, padded: false },
    { name: 'LLaMA, left-padded with explicit position ids', raw: TINY_LLAMA, padded: true },
    { name: 'OPT pre-LN', raw: TINY_OPT, padded: false },
    { name: 'OPT post-LN (gelu_new), left-padded', raw: { ...TINY_OPT, do_layer_norm_before: false, activation_function: 'gelu_new' }, padded: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const config = parseModelConfig(c.raw, 'test config');
      const model = createModel(config, undefined, { seed: 1 });
      randomizeWeights(model, 9);
      const block = model.blocks[1];
      const [b, t, d] = [2, 7, config.hiddenSize];
      const r = rng(17);
      const x = tf.variable(tf.tensor3d(randomArray(b * t * d, r, 0, 1), [b, t, d]));
      const R = tf.tensor3d(randomArray(b * t * d, r, 0, 1), [b, t, d]);
      let ctx: BlockContext | undefined;
      let mask: tf.Tensor2D | undefined;
      if (c.padded) {
        // Row 0 has 2 pads on the left; positions as generate() passes them (pads at 1).
        mask = tf.tensor2d([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], [b, t], 'int32');
        ctx = { attentionBias: paddedCausalBias(mask), positionIds: tf.tensor2d([[1, 1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]], [b, t], 'int32') };
      }
      // Padded query rows see nothing real: keep them out of the loss (their output is undefined in HF too).
      const keep = mask ? tf.reshape(tf.cast(mask, 'float32'), [b, t, 1]) : tf.ones([b, t, 1]);
      const weightsR = tf.mul(R, keep);
      const vars = new Map<string, tf.Variable>([...block.namedVariables(), ['input', x]]);
      const worst = checkAgainstFiniteDifferences(() => block.apply(x as tf.Tensor3D, ctx), weightsR, vars, 3, 23);
      console.log(`${c.name}: ${vars.size} tensors × 3 coordinates, worst err/tol ${worst.toFixed(3)}`);
      tf.dispose([x, R, keep, weightsR, mask, ctx?.attentionBias, ctx?.positionIds].filter((v): v is tf.Tensor => v !== undefined));
      model.dispose();
    });
  }

  it('OPT with project_in/project_out and a tied head: whole-model loss, every weight', () => {
    const config = parseModelConfig(TINY_OPT, 'test config');
    const model = createModel(config, undefined, { seed: 2 });
    randomizeWeights(model, 4);
    const ids = tf.tensor2d([[3, 7, 1, 39, 12, 5, 5, 0], [9, 8, 30, 2, 2, 14, 6, 11]], [2, 8], 'int32');
    // Per-token NLLs weighted by 1/n: the mean loss, summed in float64 for the differences.
    const perToken = tf.fill([2, 7], 1 / 14);
    const worst = checkAgainstFiniteDifferences(() => model.tokenNll(ids), perToken, model.namedWeights(), 2, 31);
    perToken.dispose();
    console.log(`OPT whole model: worst err/tol ${worst.toFixed(3)}`);
    ids.dispose();
    model.dispose();
  });
});
