import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '@scaleot/checkpoint';
import { builtinTask } from '@scaleot/data';
import { useBackend } from '@scaleot/model';
import {
  adapterWeights,
  applyAdapter,
  createUniformEmulator,
  evaluateModel,
  loadEmulator,
  logprobScorer,
  LoraBlock,
  nllScorer,
  readAdapter,
  TaskBatcher,
  trainableAdapterVariables,
  tuneAdapter,
  tuneAdapterInMemory,
  wrapWithLora,
  DEFAULT_TRAIN,
} from '@scaleot/offsite';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataRoot, tempDir, tinyModelDir } from './fixtures.js';

const TINY_TRAIN = { steps: 4, batchSize: 2, microBatchSize: 1, seqLen: 24, lr: 1e-3, warmupSteps: 1, maxTrainRows: 4 };

let work: string;
let emulatorDir: string;

beforeAll(async () => {
  await useBackend('wasm');
  work = await tempDir('tuning');
  emulatorDir = join(work, 'emulator');
  await createUniformEmulator({ modelDir: tinyModelDir, outDir: emulatorDir, selection: { dropLayers: [3, 5, 7, 9] } });
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function adapterBytes(dir: string): Promise<Map<string, Buffer>> {
  const f = await SafetensorsFile.open(join(dir, 'adapter.safetensors'));
  try {
    return new Map(await Promise.all(f.names().map(async (n) => [n, Buffer.from(await f.readRaw(n))] as [string, Buffer])));
  } finally {
    await f.close();
  }
}

describe('adapter tuning', () => {
  it('resuming from a checkpoint gives exactly the uninterrupted result', async () => {
    const straight = join(work, 'straight');
    await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: straight, hyper: TINY_TRAIN });

    const ckpt = join(work, 'ckpt');
    const resumed = join(work, 'resumed');
    const first = await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: resumed, hyper: TINY_TRAIN, checkpointDir: ckpt, checkpointEvery: 1, stopAfterStep: 2 });
    expect(first.completed).toBe(false);
    expect(first.train.steps).toBe(2);
    const state = JSON.parse(await readFile(join(ckpt, 'train-state.json'), 'utf8'));
    expect(state.step).toBe(2);
    const second = await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: resumed, hyper: TINY_TRAIN, checkpointDir: ckpt });
    expect(second).toMatchObject({ completed: true, train: { resumedFrom: 2, steps: 4 } });
    expect(second.train.losses).toHaveLength(2);

    const a = await adapterBytes(straight);
    const b = await adapterBytes(resumed);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, bytes] of a) expect(bytes.equals(b.get(name)!), name).toBe(true);
    // and the run did move the adapter away from the source weights
    const src = await loadEmulator(emulatorDir);
    const base = adapterWeights(src);
    const before = Buffer.from(((await base.get('transformer.h.0.attn.c_attn.weight')!.data()) as Float32Array).buffer);
    expect(before.equals(a.get('transformer.h.0.attn.c_attn.weight')!)).toBe(false);
    tf.dispose([...base.values()]);
    src.model.dispose();
  });

  it('refuses to resume a checkpoint written with other settings', async () => {
    const ckpt = join(work, 'ckpt-other');
    await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: join(work, 'x1'), hyper: TINY_TRAIN, checkpointDir: ckpt, stopAfterStep: 1 });
    await expect(tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: join(work, 'x2'), hyper: { ...TINY_TRAIN, lr: 5e-4 }, checkpointDir: ckpt })).rejects.toMatchObject({ code: 'TRAIN_STATE_MISMATCH' });
  });

  it('LoRA starts as the base block, trains only its factors, and merges into the exported weights', async () => {
    const emu = await loadEmulator(emulatorDir);
    const task = await builtinTask('moby', dataRoot);
    const tokenizer = await Tokenizer.fromDir(emulatorDir);
    const ids = tf.tensor2d([[5, 17, 300, 42, 9, 1000, 77, 3]], [1, 8], 'int32');
    try {
      const before = emu.model.logits(ids);
      wrapWithLora(emu.model, [0, 1, 10, 11], { rank: 4, alpha: 8 });
      expect(emu.model.blocks.filter((b) => b instanceof LoraBlock)).toHaveLength(4);
      const atInit = emu.model.logits(ids);
      expect(tf.max(tf.abs(tf.sub(before, atInit))).dataSync()[0]).toBeLessThan(1e-5);
      const vars = trainableAdapterVariables(emu.model, [0, 1, 10, 11]);
      expect([...vars.keys()].every((n) => /lora_[AB]$/.test(n))).toBe(true);
      expect(vars.size).toBe(4 * 4 * 2);
      const frozen = (await emu.model.namedWeights().get('transformer.h.0.attn.c_attn.weight')!.data()).slice();
      await tuneAdapterInMemory(emu, task, tokenizer, { ...DEFAULT_TRAIN, ...TINY_TRAIN, steps: 3 }, { rank: 4, alpha: 8 });
      expect(await emu.model.namedWeights().get('transformer.h.0.attn.c_attn.weight')!.data()).toEqual(frozen);
      const tuned = emu.model.logits(ids);
      expect(tf.max(tf.abs(tf.sub(before, tuned))).dataSync()[0]).toBeGreaterThan(1e-4);

      // The merged dense weights reproduce the LoRA model.
      const merged = adapterWeights(emu);
      const fresh = await loadEmulator(emulatorDir);
      const asAdapter = { manifest: { ...emu.manifest, format: 'scaleot.adapter' as const, tensors: [...merged.keys()] }, dir: 'memory', tensors: new Map<string, { shape: number[]; data: Float32Array }>() };
      for (const [n, t] of merged) asAdapter.tensors.set(n, { shape: t.shape, data: (await t.data()) as Float32Array });
      applyAdapter(fresh.model, asAdapter);
      const plain = fresh.model.logits(ids);
      expect(tf.max(tf.abs(tf.sub(tuned, plain))).dataSync()[0]).toBeLessThan(1e-4);
      tf.dispose([before, atInit, tuned, plain, ...merged.values()]);
      fresh.model.dispose();
    } finally {
      ids.dispose();
      emu.model.dispose();
    }
  });

  it('classification rows carry the loss only on the candidate tokens', async () => {
    const task = await builtinTask('spam', dataRoot);
    const tokenizer = await Tokenizer.fromDir(tinyModelDir);
    const batcher = new TaskBatcher(task, tokenizer, { batchSize: 6, seqLen: 256, seed: 3, maxTrainRows: 10 });
    const { rows, masks } = batcher.next();
    const ham = [333, 77];
    const spam = [554, 517];
    rows.forEach((ids, i) => {
      expect(ids.length).toBeLessThanOrEqual(256);
      const tail = Array.from(ids.slice(-2));
      expect([ham, spam]).toContainEqual(tail);
      expect(Array.from(ids.slice(-8, -2))).toEqual([199, 199, 44, 375, 847, 26]);
      const m = masks[i];
      expect(m.length).toBe(ids.length - 1);
      // targets are ids[1..]: the two candidate tokens are the last two targets
      expect(Array.from(m.slice(-2))).toEqual([1, 1]);
      expect(m.slice(0, -2).every((x) => x === 0)).toBe(true);
    });
    // state round trip: the same next batch
    const state = batcher.getState();
    const a = batcher.next();
    batcher.setState(state);
    const b = batcher.next();
    expect(b.rows.map((r) => Array.from(r))).toEqual(a.rows.map((r) => Array.from(r)));
  });

  it('tunes a classification task and evaluates it by multiple choice', async () => {
    const out = join(work, 'spam-adapter');
    const res = await tuneAdapter({ emulatorDir, task: 'spam', dataRoot, outDir: out, hyper: { ...TINY_TRAIN, seqLen: 64, steps: 2, maxTrainRows: 8 } });
    expect(res.completed).toBe(true);
    const adapter = await readAdapter(out);
    expect(adapter.manifest.parameters).toMatchObject({ task: 'spam', taskType: 'classification' });
    const emu = await loadEmulator(emulatorDir);
    try {
      applyAdapter(emu.model, adapter);
      const r = await evaluateModel(emu.model, await builtinTask('spam', dataRoot), await Tokenizer.fromDir(emulatorDir), { maxExamples: 4, batchSize: 4 });
      expect(r).toMatchObject({ task: 'spam', metric: 'accuracy', count: 4 });
      expect(r.value).toBeGreaterThanOrEqual(0);
      expect(r.value).toBeLessThanOrEqual(1);
      expect(r.correct).toBe(Math.round(r.value * 4));
    } finally {
      emu.model.dispose();
    }
  });
});

describe('scoring', () => {
  it('the protocol scorer (model reads T − 1 tokens) matches the model NLL where both apply', async () => {
    const emu = await loadEmulator(emulatorDir);
    const ids = Int32Array.from([5, 17, 300, 42, 9, 1000, 77, 3, 0, 12]);
    try {
      const [ours] = await nllScorer(emu.model)([ids]);
      const t = tf.tensor2d(ids, [1, ids.length], 'int32');
      const ref = emu.model.tokenNll(t);
      const want = (await ref.data()) as Float32Array;
      expect(ours).toHaveLength(ids.length - 1);
      for (let i = 0; i < want.length; i++) expect(Math.abs(ours[i] - want[i])).toBeLessThan(1e-5);
      const [lp] = await logprobScorer(emu.model)([ids]);
      expect(lp[3]).toBeCloseTo(-ours[3], 6);
      tf.dispose([t, ref]);
    } finally {
      emu.model.dispose();
    }
  });
});

describe('uniform emulator distillation', () => {
  it('trains only the kept middle blocks', async () => {
    const out = join(work, 'distilled');
    const res = await createUniformEmulator({
      modelDir: tinyModelDir,
      outDir: out,
      dataRoot,
      selection: { dropLayers: [3, 5, 7, 9] },
      distill: { corpus: 'sotu', hyper: { steps: 2, batchSize: 2, microBatchSize: 2, seqLen: 24, lr: 1e-3, warmupSteps: 1, maxTrainRows: 2 } },
    });
    expect(res.distill?.steps).toBe(2);
    expect(res.manifest.parameters).toMatchObject({ distill: { corpus: 'sotu', mseWeight: 30 } });
    const plain = await SafetensorsFile.open(join(emulatorDir, 'model.safetensors'));
    const dist = await SafetensorsFile.open(join(out, 'model.safetensors'));
    try {
      expect(dist.names().sort()).toEqual(plain.names().sort());
      for (const name of plain.names()) {
        const same = Buffer.from(await plain.readRaw(name)).equals(Buffer.from(await dist.readRaw(name)));
        const middle = /^transformer\.h\.(2|4|6|8)\./.test(name);
        if (!middle) expect(same, name).toBe(true);
        if (middle && /c_fc\.weight$/.test(name)) expect(same, name).toBe(false);
      }
    } finally {
      await plain.close();
      await dist.close();
    }
  });
});
