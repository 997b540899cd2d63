import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { Checkpoint } from '@scaleot/checkpoint';
import { loadModel, useBackend } from '@scaleot/model';
import { fiveNumberReport, plugInModel, renderReportMarkdown, type FiveNumberReport } from '@scaleot/offsite';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataRoot, SHORT_TRAIN, tempDir, tinyModelDir } from './fixtures.js';

// The shortened pipeline (emulate → tune → plug-in → eval → report) on the tiny fixture: few steps,
// short windows, a few evaluation blocks. It asserts what holds at any scale, not the reference numbers.
describe('five-number report, shortened, moby on the tiny model', () => {
  let work: string;
  let report: FiveNumberReport;

  beforeAll(async () => {
    await useBackend('wasm');
    work = await tempDir('pipeline');
    report = await fiveNumberReport({
      modelDir: tinyModelDir,
      task: 'moby',
      dataRoot,
      workDir: work,
      adapter: { nAdapter: 4 },
      selection: { dropLayers: [3, 5, 7, 9] },
      hyper: SHORT_TRAIN,
      eval: { maxBlocks: 3 },
    });
  }, 300_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('reports all five numbers with the protocol, the settings and the emulator', () => {
    for (const k of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in', 'full_fine_tuned'] as const) {
      expect(Number.isFinite(report[k])).toBe(true);
      expect(report[k]).toBeGreaterThan(1);
    }
    expect(report).toMatchObject({ task: 'moby', metric: 'perplexity', higherIsBetter: false, protocolVersion: 1 });
    expect(report.hyperParameters.train).toMatchObject({ ...SHORT_TRAIN, finalLrFraction: 0.1, gradClip: 1, weightDecay: 0.01, seed: 0 });
    expect(report.emulator.layerMap).toEqual(['adapter', 'adapter', 'raw', 'dropped', 'raw', 'dropped', 'raw', 'dropped', 'raw', 'dropped', 'adapter', 'adapter']);
    expect(report.emulator.blocks).toBe(8);
    expect(report.timings.total).toBeGreaterThan(0);
    const md = renderReportMarkdown(report);
    expect(md).toContain('| moby | perplexity ↓ |');
    expect(md.split('\n')[2].split('|').length).toBe(9);
  });

  it('the tuned emulator beats its zero-shot', () => {
    expect(report.emulator_fine_tuned).toBeLessThan(report.emulator_zero_shot);
  });

  it('the plug-in checkpoint has the base names, shapes and dtypes; non-adapter tensors are bit-identical', async () => {
    const base = await Checkpoint.open(tinyModelDir);
    const plugged = await Checkpoint.open(report.artifacts.pluggedDir);
    try {
      expect(plugged.names().sort()).toEqual(base.names().sort());
      let changed = 0;
      for (const name of base.names()) {
        const a = base.info(name);
        const b = plugged.info(name);
        expect(b.shape, name).toEqual(a.shape);
        expect(b.dtype, name).toBe(a.dtype);
        const same = Buffer.from(await base.readRaw(name)).equals(Buffer.from(await plugged.readRaw(name)));
        const adapterBlock = /^(transformer\.)?h\.(0|1|10|11)\./.test(name);
        if (!adapterBlock) expect(same, name).toBe(true);
        else if (!same) changed++;
      }
      expect(changed).toBeGreaterThan(0); // tuning moved the adapters
    } finally {
      await base.close();
      await plugged.close();
    }
  });

  it('the plug-in checkpoint reloads and gives the logits of the in-memory plugged model', async () => {
    const inMemory = await plugInModel(tinyModelDir, report.artifacts.adapterDir);
    const reloaded = await loadModel(report.artifacts.pluggedDir);
    try {
      const ids = tf.tensor2d([[15, 200, 31, 7, 999, 4000, 0, 12]], [1, 8], 'int32');
      const a = inMemory.logits(ids);
      const b = reloaded.logits(ids);
      const diff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
      expect(diff).toBeLessThanOrEqual(1e-5);
      tf.dispose([ids, a, b]);
    } finally {
      inMemory.dispose();
      reloaded.dispose();
    }
  });

  it('writes the artifacts under their manifests', async () => {
    const { readManifest } = await import('@scaleot/offsite');
    const emu = await readManifest(report.artifacts.emulatorDir, 'scaleot.emulator');
    const adapter = await readManifest(report.artifacts.adapterDir, 'scaleot.adapter');
    expect(adapter.sourceModel).toEqual(emu.sourceModel);
    expect(adapter.tensors.every((n) => /^transformer\.h\.(0|1|10|11)\./.test(n))).toBe(true);
    expect(adapter.tensors).toHaveLength(4 * 12);
    expect(join(report.artifacts.pluggedDir)).toBe(report.artifacts.pluggedDir);
  });
});
