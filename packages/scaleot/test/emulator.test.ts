import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile } from '@scaleot/checkpoint';
import { loadModel, openModelCheckpoint, useBackend } from '@scaleot/model';
import { loadEmulator, loadEmulatorStage } from '@scaleot/offsite';
import { buildScaleotEmulator, planEmulator, runStage1, stage1Layout, svd, type ScaleotEmulatorOptions } from '@scaleot/scaleot';
import { randomStream, savedRandomModel, tempDir } from './helpers.js';

let modelDir: string;
let otherModelDir: string;
let stage1Dir: string;
let source: Map<string, Float32Array>;

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function emulatorWeights(dir: string): Promise<Map<string, Float32Array>> {
  const all = await SafetensorsFile.readAllFloat32(join(dir, 'model.safetensors'));
  return new Map([...all].map(([n, t]) => [n, t.data]));
}

async function logitsOf(model: { logits(ids: tf.Tensor2D): tf.Tensor3D }): Promise<Float32Array> {
  const ids = tf.tensor2d([Array.from(randomStream(12, 48, 77))], [1, 12], 'int32');
  const out = model.logits(ids);
  const data = (await out.data()) as Float32Array;
  tf.dispose([ids, out]);
  return data;
}

beforeAll(async () => {
  await useBackend('cpu');
  // 10 blocks, N_a = 2: middle 1…8 = two groups of four.
  modelDir = await savedRandomModel('emu', 31, 10);
  otherModelDir = await savedRandomModel('emu-other', 32, 10);
  stage1Dir = join(tempDir('emu-stage1'), 'stage1');
  const r = await runStage1({ modelDir, outDir: stage1Dir, streams: { train: randomStream(400, 48, 1), val: randomStream(200, 48, 2) }, nAdapter: 2, steps: 3, batchSize: 2, rlBatchSize: 2, eta: 0.3, seed: 1 });
  expect(r.completed).toBe(true);
  const { checkpoint, names } = await openModelCheckpoint(modelDir);
  source = new Map();
  for (const [canonical, stored] of names) source.set(canonical, await checkpoint.readFloat32(stored));
  await checkpoint.close();
});

describe('stage 2: planning', () => {
  const scores = [0, 0.5, -1, 2, 0.1, 3, -2, 1, 0, 0];
  const middle = [1, 2, 3, 4, 5, 6, 7, 8];
  it('replaces the round(α·4) lowest-scored blocks of every group', () => {
    expect(planEmulator({ scores, middle, alpha: 0.5 })).toMatchObject({ replaced: [2, 4, 6, 8], raw: [1, 3, 5, 7], dropped: [] });
    expect(planEmulator({ scores, middle, alpha: 0.25 }).replaced).toEqual([2, 6]);
    expect(planEmulator({ scores, middle, alpha: 0 }).replaced).toEqual([]);
    expect(planEmulator({ scores, middle, alpha: 0.5, mode: 'drop' })).toMatchObject({ dropped: [2, 4, 6, 8], replaced: [] });
    expect(planEmulator({ scores, middle, alpha: 0.5, mode: 'uniform-replace' }).replaced).toEqual([2, 4, 6, 8].map((i) => i));
    expect(planEmulator({ scores: new Array(12).fill(0), middle: [2, 3, 4, 5, 6, 7, 8, 9], alpha: 0.5, mode: 'uniform-replace' }).replaced).toEqual([3, 5, 7, 9]);
  });
});

describe('adapters at several depths (CRaSh-style)', () => {
  it('stage-1 groups are cut inside each run of middle blocks; the plan keeps α per group', () => {
    const layout = stage1Layout(12, 0, 0, 4, [0, 4, 7, 11]);
    expect(layout).toEqual({ nLayer: 12, nAdapter: 4, bottom: [0], top: [4, 7, 11], middle: [1, 2, 3, 5, 6, 8, 9, 10], groups: [[1, 2, 3], [5, 6], [8, 9, 10]] });
    expect(stage1Layout(12, 0, 0, 2, [0, 11]).groups).toEqual([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]);
    expect(() => stage1Layout(4, 0, 0, 4, [0, 1, 2, 3])).toThrow(expect.objectContaining({ code: 'NO_MIDDLE_BLOCKS' }));
    expect(() => stage1Layout(12, 0, 0, 4, [0, 0])).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    const scores = [0, 3, -1, 2, 0, -2, 1, 0, 5, -3, 0, 0];
    const plan = planEmulator({ scores, middle: layout.middle, alpha: 0.5, groups: layout.groups });
    expect(plan.groups).toEqual(layout.groups);
    expect(plan.replaced).toEqual([2, 3, 5, 9, 10]); // [1,2,3]: 2 lowest; [5,6]: 1; [8,9,10]: 2
    expect(() => planEmulator({ scores, middle: layout.middle, alpha: 0.5, groups: [[1, 2, 3]] })).toThrow(expect.objectContaining({ code: 'BAD_GROUP_SIZE' }));
  });
});

describe('stage 2: emulators', () => {
  const build = (extra: Partial<ScaleotEmulatorOptions>) => buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('emu-out'), 'emulator'), ...extra });

  it('β = 0 stores every kept original weight bit for bit, and the stage-1 harmonizers for the replaced blocks', async () => {
    const { outDir, plan, manifest } = await build({ alpha: 0.5, beta: 0 });
    expect(manifest.method).toBe('scaleot');
    expect(plan.replaced).toHaveLength(4);
    const stored = await emulatorWeights(outDir);
    const harmonizers = await SafetensorsFile.readAllFloat32(join(stage1Dir, 'harmonizers.safetensors'));
    for (const [name, data] of stored) {
      if (name.startsWith('harmonizers.')) {
        expect(plan.replaced).toContain(Number(name.split('.')[1]));
        expect(bytes(data).equals(bytes(harmonizers.get(name)!.data))).toBe(true);
      } else {
        expect(bytes(data).equals(bytes(source.get(name)!))).toBe(true);
      }
    }
    for (const i of plan.replaced) expect(stored.has(`transformer.h.${i}.attn.c_attn.weight`)).toBe(false);
    const emu = await loadEmulator(outDir);
    expect(emu.model.blocks.map((b) => b.kind).filter((k) => k === 'scaleot.harmonizer')).toHaveLength(4);
    emu.model.dispose();
  });

  it('α = 0 (and β = 0) gives the original blocks: same weights, same logits, no stage 1 needed', async () => {
    const { outDir, manifest } = await buildScaleotEmulator({ modelDir, outDir: join(tempDir('emu-a0'), 'emulator'), nAdapter: 2, alpha: 0, beta: 0 });
    expect(manifest.layerMap.every((e) => e === 'adapter' || e === 'raw')).toBe(true);
    const stored = await emulatorWeights(outDir);
    expect(stored.size).toBe(source.size);
    for (const [name, data] of source) expect(bytes(stored.get(name)!).equals(bytes(data))).toBe(true);
    const emu = await loadEmulator(outDir);
    const full = await loadModel(modelDir);
    expect(await logitsOf(emu.model)).toEqual(await logitsOf(full));
    emu.model.dispose();
    full.dispose();
  });

  it('β > 0: attention projections of raw middle blocks become their best rank-r approximation; dense and factors load alike', async () => {
    const dense = await build({ alpha: 0.5, beta: 0.5 });
    const factors = await build({ alpha: 0.5, beta: 0.5, srcStorage: 'factors' });
    const stored = await emulatorWeights(dense.outDir);
    for (const i of dense.plan.raw) {
      const name = `transformer.h.${i}.attn.c_attn.weight`;
      const w = stored.get(name)!;
      const s = svd(w, 16, 48).s;
      expect(s[7]).toBeGreaterThan(1e-3);
      expect(s[8] / s[0]).toBeLessThan(1e-5);
      const original = svd(source.get(name)!, 16, 48).s;
      for (let k = 0; k < 8; k++) expect(Math.abs(s[k] - original[k]) / original[0]).toBeLessThan(1e-5);
      expect(bytes(stored.get(`transformer.h.${i}.mlp.c_fc.weight`)!).equals(bytes(source.get(`transformer.h.${i}.mlp.c_fc.weight`)!))).toBe(true);
      expect(stored.get(`transformer.h.${i}.attn.c_proj.weight`)).not.toEqual(source.get(`transformer.h.${i}.attn.c_proj.weight`));
    }
    for (const i of [0, 9]) expect(bytes(stored.get(`transformer.h.${i}.attn.c_attn.weight`)!).equals(bytes(source.get(`transformer.h.${i}.attn.c_attn.weight`)!))).toBe(true);
    expect((dense.manifest.compression.src as { ranks: Record<string, number> }).ranks[`transformer.h.${dense.plan.raw[0]}.attn.c_proj.weight`]).toBe(8);
    const fStored = await emulatorWeights(factors.outDir);
    expect(fStored.get(`transformer.h.${dense.plan.raw[0]}.attn.c_attn.weight_left`)!.length).toBe(16 * 8);
    const a = await loadEmulator(dense.outDir);
    const b = await loadEmulator(factors.outDir);
    const la = await logitsOf(a.model);
    const lb = await logitsOf(b.model);
    for (let k = 0; k < la.length; k++) expect(Math.abs(la[k] - lb[k])).toBeLessThan(1e-4);
    a.model.dispose();
    b.model.dispose();
  });

  it('dynamic LayerDrop drops the same blocks ScaleOT replaces', async () => {
    const replace = await build({ alpha: 0.5 });
    const drop = await build({ alpha: 0.5, mode: 'drop' });
    expect(drop.plan.dropped).toEqual(replace.plan.replaced);
    expect(drop.manifest.layerMap.filter((e) => e === 'dropped')).toHaveLength(4);
  });

  it('bad input: α/β outside [0, 1), no middle block, stage 1 of another model or layout → typed errors, nothing written', async () => {
    const cases: Array<[Partial<ScaleotEmulatorOptions>, string]> = [
      [{ alpha: 1 }, 'BAD_ALPHA'],
      [{ alpha: -0.1 }, 'BAD_ALPHA'],
      [{ alpha: Number.NaN }, 'BAD_ALPHA'],
      [{ beta: 1 }, 'BAD_BETA'],
      [{ beta: -0.5 }, 'BAD_BETA'],
      [{ nAdapter: 10 }, 'NO_MIDDLE_BLOCKS'],
      [{ nAdapter: 12 }, 'NO_MIDDLE_BLOCKS'],
      [{ nAdapter: 0 }, 'STAGE1_LAYOUT_MISMATCH'],
      [{ modelDir: otherModelDir }, 'STAGE1_SOURCE_MISMATCH'],
      [{ stage1Dir: undefined }, 'STAGE1_MISSING'],
      [{ stage1Dir: modelDir }, 'STAGE1_MISSING'],
    ];
    for (const [extra, code] of cases) {
      const outDir = join(tempDir('emu-bad'), 'emulator');
      await expect(buildScaleotEmulator({ modelDir, stage1Dir, outDir, alpha: 0.5, ...extra })).rejects.toMatchObject({ code });
      expect(existsSync(outDir)).toBe(false);
    }
  });
});

describe('stage 2: emulators split into pipeline stages', () => {
  it('loadEmulatorStage stages chained in order compute the emulator (harmonizers, SRC factors, dropped blocks)', async () => {
    const ranges = [
      { from: 0, to: 4 },
      { from: 4, to: 7 },
      { from: 7, to: 10 },
    ];
    for (const extra of [{ alpha: 0.5, beta: 0.5, srcStorage: 'factors' as const }, { alpha: 0.5, beta: 0, mode: 'drop' as const }]) {
      const { outDir, manifest } = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: join(tempDir('emu-stages'), 'emulator'), nAdapter: 2, ...extra });
      const kinds = new Set(manifest.layerMap.map((e) => (typeof e === 'object' ? e.replacedBy.kind : e)));
      expect(kinds.size).toBeGreaterThanOrEqual(3);
      const whole = await loadEmulator(outDir);
      const stages = await Promise.all(ranges.map(async (r) => (await loadEmulatorStage(outDir, r)).stage));
      const ids = tf.tensor2d([Array.from(randomStream(12, 48, 77))], [1, 12], 'int32');
      const chained = tf.tidy(() => {
        let h: tf.Tensor = ids;
        for (const s of stages) h = s.forward(h);
        return stages[2].head(h as tf.Tensor3D);
      });
      const reference = whole.model.logits(ids);
      const diff = tf.max(tf.abs(tf.sub(chained, reference))).dataSync()[0];
      // The same modules on the same values: float32 identical in practice; 1e-5 allows kernel order.
      expect(diff).toBeLessThan(1e-5);
      // Each stage holds only its own blocks: dropped blocks absent, every other one present.
      const kept = manifest.layerMap.flatMap((e, i) => (e === 'dropped' ? [] : [i]));
      expect(stages.flatMap((s) => s.blocks.map((b) => b.sourceIndex))).toEqual(kept);
      tf.dispose([ids, chained, reference]);
      for (const s of stages) s.dispose();
      whole.model.dispose();
    }
  });
});
