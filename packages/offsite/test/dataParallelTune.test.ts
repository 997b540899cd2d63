import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { builtinTask } from '@scaleot/data';
import { DataParallelTrainer, useBackend } from '@scaleot/model';
import { adapterWeights, blockKindModules, shiftedLossSum, createUniformEmulator, loadEmulator, trainableAdapterVariables, tuneAdapterInMemory, wrapWithLora, DEFAULT_TRAIN, type LoraSpec } from '@scaleot/offsite';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataRoot, tempDir, tinyModelDir } from './fixtures.js';

// Data-parallel tuning (micro-batches over 2 threads, gradients summed, one update here) against the
// single-thread loop on the same batches. Both sum the same float32 micro-batch gradients in another
// order and apply the same float32 AdamW. Tolerance: losses within 1e-5 relative; every adapter
// weight within 2e-5·max(1, |w|) after 3 steps that move weights by ~lr = 1e-3 — except the attention
// key bias, whose true gradient is exactly 0 (softmax cancels it), so both sides see float noise that
// Adam turns into ±lr steps: it is checked to stay within steps·lr. LoRA is compared on gradients (B
// starts at 0, so Adam's sign-like first step would turn float noise of many near-zero entries into ±lr):
// the replicas' summed gradient equals this thread's within 1e-5 of the largest entry.
const STEPS = 3;
const LR = 1e-3;
const HYPER = { ...DEFAULT_TRAIN, steps: STEPS, batchSize: 8, microBatchSize: 2, seqLen: 32, lr: LR, warmupSteps: 1, maxTrainRows: 16 };

let work: string;
let emulatorDir: string;

beforeAll(async () => {
  await useBackend('wasm');
  work = await tempDir('dp-tune');
  emulatorDir = join(work, 'emulator');
  await createUniformEmulator({ modelDir: tinyModelDir, outDir: emulatorDir, selection: { dropLayers: [3, 5, 7, 9] } });
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function tune(task: string, threads: number, lora: LoraSpec | null) {
  const emu = await loadEmulator(emulatorDir);
  try {
    const tokenizer = await Tokenizer.fromDir(emulatorDir);
    const { train } = await tuneAdapterInMemory(emu, await builtinTask(task, dataRoot), tokenizer, HYPER, lora, { threads });
    const weights = adapterWeights(emu);
    const out = new Map<string, Float32Array>();
    for (const [n, t] of weights) out.set(n, (await t.data()) as Float32Array);
    tf.dispose([...weights.values()]);
    return { losses: train.losses, weights: out };
  } finally {
    emu.model.dispose();
  }
}

function compare(one: Awaited<ReturnType<typeof tune>>, two: Awaited<ReturnType<typeof tune>>, start: Map<string, Float32Array>) {
  expect(two.losses).toHaveLength(STEPS);
  two.losses.forEach((l, i) => expect(Math.abs(l - one.losses[i])).toBeLessThanOrEqual(1e-5 * Math.abs(one.losses[i])));
  let moved = 0;
  for (const [name, w1] of one.weights) {
    const w2 = two.weights.get(name)!;
    const w0 = start.get(name)!;
    const d = w1.length / 3;
    const keyBias = name.endsWith('attn.c_attn.bias');
    for (let i = 0; i < w1.length; i++) {
      moved = Math.max(moved, Math.abs(w1[i] - w0[i]));
      const diff = Math.abs(w1[i] - w2[i]);
      if (keyBias && i >= d && i < 2 * d) expect(diff).toBeLessThanOrEqual(STEPS * LR * 1.01);
      else if (diff > 2e-5 * Math.max(1, Math.abs(w1[i]))) throw new Error(`${name}[${i}]: 1 thread ${w1[i]}, 2 threads ${w2[i]}`);
    }
  }
  expect(moved).toBeGreaterThan(LR / 2); // the steps did train
}

describe('data-parallel adapter tuning', () => {
  it('2 threads give the 1-thread weights and losses (LM task; classification task)', async () => {
    const emu = await loadEmulator(emulatorDir);
    const base = adapterWeights(emu);
    const start = new Map<string, Float32Array>();
    for (const [n, t] of base) start.set(n, (await t.data()) as Float32Array);
    tf.dispose([...base.values()]);
    emu.model.dispose();

    compare(await tune('moby', 1, null), await tune('moby', 2, null), start);
    compare(await tune('spam', 1, null), await tune('spam', 2, null), start);
  }, 300_000);

  it('LoRA replicas (built from the emulator on disk) give the gradients of this thread', async () => {
    const emu = await loadEmulator(emulatorDir);
    const idx = [...emu.manifest.adapter.bottom, ...emu.manifest.adapter.top];
    const lora = { rank: 4, alpha: 8 };
    wrapWithLora(emu.model, idx, lora, 0);
    const vars = trainableAdapterVariables(emu.model, idx);
    // B ≠ 0 so that A gets a gradient too; the replicas receive it through loadTrainable.
    for (const [n, v] of vars) if (n.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.01, 'float32', 3));
    // Rows are windows of T + 1 tokens; the second is a full-context window (n_positions + 1 tokens).
    const window = emu.config.maxPositions + 1;
    const ids = Int32Array.from({ length: 2 * 20 + window }, (_, i) => (i * 37 + 11) % 500);
    const parts = [{ ids: ids.subarray(0, 40), rows: 2, seqLen: 20 }, { ids: ids.subarray(40), rows: 1, seqLen: window }];
    const dp = await DataParallelTrainer.create(emu.model, {
      threads: 2,
      variables: vars,
      backend: 'wasm',
      replica: { module: new URL('../dist/tuneReplica.js', import.meta.url), exportName: 'buildEmulatorReplica', variablesExport: 'emulatorReplicaVariables', loadsWeights: true, args: { emulatorDir, indices: idx, lora, seed: 0, kindModules: blockKindModules() } },
    });
    try {
      await dp.loadTrainable(new Map([...vars].map(([n, v]) => [n, v.dataSync() as Float32Array])));
      const tokens = 2 * 19 + window - 1;
      const got = await dp.gradients([[parts[0]], [parts[1]]], tokens);
      // This thread: the tuning loop's loss on the same rows (the model reads T tokens, predicts T targets).
      const want = parts.map((p) => {
        const { value, grads } = tf.variableGrads(() => tf.div(shiftedLossSum(emu.model, tf.tensor2d(p.ids, [p.rows, p.seqLen], 'int32'), tf.ones([p.rows, p.seqLen - 1])), tokens) as tf.Scalar, [...vars.values()]);
        const named = new Map([...vars].map(([n, v]) => [n, grads[v.name]]));
        const lossSum = value.dataSync()[0] * tokens;
        value.dispose();
        return { grads: named, lossSum };
      });
      expect(got.lossSum).toBeCloseTo(want[0].lossSum + want[1].lossSum, 2);
      expect(got.grads.size).toBe(vars.size);
      let largest = 0;
      for (const [name, g] of got.grads) {
        const a = g.dataSync();
        const b0 = want[0].grads.get(name)!.dataSync();
        const b1 = want[1].grads.get(name)!.dataSync();
        let scale = 0;
        for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b0[i] + b1[i]));
        largest = Math.max(largest, scale);
        for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - (b0[i] + b1[i])) > 1e-5 * scale) throw new Error(`${name}[${i}]: replicas ${a[i]}, here ${b0[i] + b1[i]}`);
      }
      expect(largest).toBeGreaterThan(1e-3);
      tf.dispose([...got.grads.values(), ...want.flatMap((w) => [...w.grads.values()])]);
    } finally {
      await dp.close();
      emu.model.dispose();
    }
  }, 120_000);
});
