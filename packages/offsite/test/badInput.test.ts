import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { TaskError } from '@scaleot/data';
import { useBackend } from '@scaleot/model';
import {
  AdapterMismatchError,
  createUniformEmulator,
  evaluate,
  loadEmulator,
  ManifestError,
  OffsiteError,
  plugIn,
  tuneAdapter,
} from '@scaleot/offsite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataRoot, smallModelDir, tempDir, tinyModelDir } from './fixtures.js';

const TINY_TRAIN = { steps: 1, batchSize: 1, microBatchSize: 1, seqLen: 16, lr: 1e-3, warmupSteps: 1, maxTrainRows: 2 };

let work: string;
let emulatorDir: string;
let adapterDir: string;

beforeAll(async () => {
  await useBackend('wasm');
  work = await tempDir('bad');
  emulatorDir = join(work, 'emulator');
  adapterDir = join(work, 'adapter');
  await createUniformEmulator({ modelDir: tinyModelDir, outDir: emulatorDir, selection: { dropLayers: [3, 5, 7, 9] } });
  await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: adapterDir, hyper: TINY_TRAIN });
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function copyDir(from: string, label: string): Promise<string> {
  const to = join(work, label);
  await cp(from, to, { recursive: true });
  return to;
}

async function editJson(path: string, edit: (v: Record<string, unknown>) => void): Promise<void> {
  const v = JSON.parse(await readFile(path, 'utf8'));
  edit(v);
  await writeFile(path, JSON.stringify(v));
}

describe('bad input gives typed errors and writes nothing', () => {
  it('an adapter from a model of another width (shapes)', async () => {
    const out = join(work, 'out-small');
    const err = await plugIn({ modelDir: smallModelDir, adapterDir, outDir: out }).catch((e) => e);
    expect(err).toBeInstanceOf(AdapterMismatchError);
    expect(err.code).toBe('ADAPTER_SHAPE_MISMATCH');
    expect(existsSync(out)).toBe(false);
  });

  it('an adapter whose tensor names the model does not have', async () => {
    const bad = await copyDir(adapterDir, 'adapter-renamed');
    // Rename one tensor in place: same byte length, so the safetensors file stays valid.
    const path = join(bad, 'adapter.safetensors');
    const bytes = await readFile(path);
    const text = bytes.toString('latin1').replace('transformer.h.0.attn.c_proj.bias', 'transformer.h.0.attn.c_prox.bias');
    await writeFile(path, Buffer.from(text, 'latin1'));
    await editJson(join(bad, 'adapter.json'), (m) => {
      m.tensors = (m.tensors as string[]).map((n) => n.replace('attn.c_proj.bias', 'attn.c_prox.bias'));
    });
    const out = join(work, 'out-renamed');
    const err = await plugIn({ modelDir: tinyModelDir, adapterDir: bad, outDir: out }).catch((e) => e);
    expect(err).toBeInstanceOf(AdapterMismatchError);
    expect(err.code).toBe('ADAPTER_NAMES_MISMATCH');
    expect(existsSync(out)).toBe(false);
  });

  it('an adapter cut from another checkpoint of the same shape (source hash)', async () => {
    const other = await copyDir(tinyModelDir, 'tiny-other');
    const fh = await open(join(other, 'model.safetensors'), 'r+');
    const size = (await fh.stat()).size;
    await fh.write(Buffer.from([0x3f]), 0, 1, size - 3); // flip a byte of the last tensor's data
    await fh.close();
    const out = join(work, 'out-other');
    const err = await plugIn({ modelDir: other, adapterDir, outDir: out }).catch((e) => e);
    expect(err).toBeInstanceOf(AdapterMismatchError);
    expect(err.code).toBe('ADAPTER_SOURCE_MISMATCH');
    expect(existsSync(out)).toBe(false);
  });

  it('an unknown manifest version, a wrong format, a missing field', async () => {
    const v2 = await copyDir(adapterDir, 'adapter-v2');
    await editJson(join(v2, 'adapter.json'), (m) => (m.version = 2));
    const out = join(work, 'out-v2');
    await expect(plugIn({ modelDir: tinyModelDir, adapterDir: v2, outDir: out })).rejects.toSatisfy((e: ManifestError) => e instanceof ManifestError && e.code === 'MANIFEST_VERSION');
    expect(existsSync(out)).toBe(false);

    const emu99 = await copyDir(emulatorDir, 'emulator-v99');
    await editJson(join(emu99, 'emulator.json'), (m) => (m.version = 99));
    await expect(loadEmulator(emu99)).rejects.toMatchObject({ code: 'MANIFEST_VERSION' });
    const tuneOut = join(work, 'out-tune-v99');
    await expect(tuneAdapter({ emulatorDir: emu99, task: 'moby', dataRoot, outDir: tuneOut, hyper: TINY_TRAIN })).rejects.toBeInstanceOf(ManifestError);
    expect(existsSync(tuneOut)).toBe(false);

    // an emulator passed where an adapter is expected
    await expect(plugIn({ modelDir: tinyModelDir, adapterDir: emulatorDir, outDir: out })).rejects.toMatchObject({ code: 'MANIFEST_MISSING' });
    const wrongFormat = await copyDir(adapterDir, 'adapter-format');
    await editJson(join(wrongFormat, 'adapter.json'), (m) => (m.format = 'scaleot.emulator'));
    await expect(plugIn({ modelDir: tinyModelDir, adapterDir: wrongFormat, outDir: out })).rejects.toMatchObject({ code: 'MANIFEST_FORMAT' });
    const noSource = await copyDir(adapterDir, 'adapter-nosource');
    await editJson(join(noSource, 'adapter.json'), (m) => delete m.sourceModel);
    await expect(plugIn({ modelDir: tinyModelDir, adapterDir: noSource, outDir: out })).rejects.toMatchObject({ code: 'MANIFEST_FIELD' });
    expect(existsSync(out)).toBe(false);
  });

  it('a malformed task file', async () => {
    const dir = join(work, 'task-malformed');
    await mkdir(dir);
    await writeFile(join(dir, 'task.json'), '{"version": 1, "name": "x", "type": "classification", "train": "train.jsonl"');
    const out = join(work, 'out-malformed');
    await expect(tuneAdapter({ emulatorDir, task: dir, outDir: out, hyper: TINY_TRAIN })).rejects.toBeInstanceOf(TaskError);
    expect(existsSync(out)).toBe(false);
  });

  it('a label that is not a candidate', async () => {
    const dir = join(work, 'task-label');
    await mkdir(dir);
    await writeFile(join(dir, 'task.json'), JSON.stringify({ version: 1, name: 'mail', type: 'classification', train: 'train.jsonl', test: 'test.jsonl', promptTemplate: '{text}', suffix: '\n\nLabel:', candidates: { ham: ' ham', spam: ' spam' } }));
    await writeFile(join(dir, 'train.jsonl'), '{"text": "hello", "label": "ham"}\n{"text": "buy now", "label": "eggs"}\n');
    await writeFile(join(dir, 'test.jsonl'), '{"text": "hi", "label": "ham"}\n');
    const out = join(work, 'out-label');
    const err = await tuneAdapter({ emulatorDir, task: dir, outDir: out, hyper: TINY_TRAIN }).catch((e) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect(String(err.message)).toContain('eggs');
    expect(existsSync(out)).toBe(false);
  });

  it('an empty dataset', async () => {
    const dir = join(work, 'task-empty');
    await mkdir(dir);
    await writeFile(join(dir, 'task.json'), JSON.stringify({ version: 1, name: 'empty', type: 'lm', train: 'train.jsonl', test: 'test.jsonl' }));
    await writeFile(join(dir, 'train.jsonl'), '\n');
    await writeFile(join(dir, 'test.jsonl'), '{"text": "x"}\n');
    const out = join(work, 'out-empty');
    await expect(tuneAdapter({ emulatorDir, task: dir, outDir: out, hyper: TINY_TRAIN })).rejects.toBeInstanceOf(TaskError);
    await expect(tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: out, hyper: { ...TINY_TRAIN, maxTrainRows: 0 } })).rejects.toMatchObject({ code: 'EMPTY_DATASET' });
    // a test split too short for one evaluation block
    await writeFile(join(dir, 'train.jsonl'), '{"text": "some words"}\n');
    await expect(evaluate({ emulatorDir, task: dir })).rejects.toMatchObject({ code: 'EMPTY_DATASET' });
    // training text shorter than one window
    await expect(tuneAdapter({ emulatorDir, task: dir, outDir: out, hyper: TINY_TRAIN })).rejects.toMatchObject({ code: 'EMPTY_DATASET' });
    expect(existsSync(out)).toBe(false);
  });

  it('N_a larger than the model, or leaving no middle block', async () => {
    for (const nAdapter of [12, 13, 40]) {
      const out = join(work, `out-na-${nAdapter}`);
      const err = await createUniformEmulator({ modelDir: tinyModelDir, outDir: out, adapter: { nAdapter } }).catch((e) => e);
      expect(err).toBeInstanceOf(OffsiteError);
      expect(err.code).toBe('ADAPTER_TOO_LARGE');
      expect(existsSync(out)).toBe(false);
    }
  });

  it('an existing output directory is not overwritten unless asked', async () => {
    await expect(createUniformEmulator({ modelDir: tinyModelDir, outDir: emulatorDir })).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
  });
});
