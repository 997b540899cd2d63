import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { builtinTask, type Task } from '@scaleot/data';
import { useBackend, type CausalLM } from '@scaleot/model';
import {
  adapterLayout,
  applyAdapter,
  auditEmulator,
  distillAttack,
  fineTuneAttack,
  klToTeacherSum,
  loadEmulator,
  plugInModel,
  readAdapter,
  selectKeptMiddle,
  shiftedLossSum,
  TaskBatcher,
  tuneAdapter,
  type LoadedEmulator,
  type TrainHyperParameters,
} from '@scaleot/offsite';
import { buildScaleotEmulator, corpusStreams, HARMONIZER_KIND, runFrontier, runStage1, SRC_FACTORS_KIND } from '@scaleot/scaleot';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_DATA_DIR, fixtureModelDir } from '../../../test/support/fixtures.js';
import { tempDir } from './helpers.js';

// The privacy audit on a ScaleOT emulator of the tiny GPT-2 with both kinds of non-adapter module a
// data owner receives (harmonizers, SRC factors): each attacker must train them, and each must move
// its own objective the right way at a tiny budget.

const modelDir = fixtureModelDir('tiny');
const dataRoot = FIXTURE_DATA_DIR;
const ATTACK: TrainHyperParameters = { steps: 6, batchSize: 2, microBatchSize: 2, seqLen: 24, lr: 3e-4, warmupSteps: 1, finalLrFraction: 0.1, gradClip: 1, weightDecay: 0, seed: 3, maxTrainRows: 2 };

let work: string;
let emulatorDir: string;
let adapterDir: string;
let task: Task;
let tokenizer: Tokenizer;
let harmonized: number[];
let factored: number[];

beforeAll(async () => {
  await useBackend('wasm');
  work = tempDir('audit');
  const stage1Dir = join(work, 'stage1');
  const streams = await corpusStreams('sotu', dataRoot, modelDir, 4);
  await runStage1({ modelDir, outDir: stage1Dir, streams, nAdapter: 4, rank: 16, steps: 1, batchSize: 2, microBatchSize: 2, seqLen: 24, rlBatchSize: 2, warmupSteps: 1, lr: 3e-3, seed: 1 });
  emulatorDir = join(work, 'emulator');
  const built = await buildScaleotEmulator({ modelDir, stage1Dir, outDir: emulatorDir, nAdapter: 4, alpha: 0.5, beta: 0.5, srcStorage: 'factors' });
  harmonized = built.plan.replaced;
  factored = built.plan.raw;
  adapterDir = join(work, 'adapter');
  await tuneAdapter({ emulatorDir, task: 'moby', dataRoot, outDir: adapterDir, hyper: { ...ATTACK, steps: 2 }, threads: 1 });
  task = await builtinTask('moby', dataRoot);
  tokenizer = await Tokenizer.fromDir(emulatorDir);
}, 60_000);

/** Values of every weight, by name (copies). */
function snapshot(model: CausalLM): Map<string, Float32Array> {
  return new Map([...model.namedWeights()].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]));
}

function changed(before: Map<string, Float32Array>, model: CausalLM, name: string): boolean {
  const after = model.namedWeights().get(name)!.dataSync() as Float32Array;
  return after.some((x, i) => x !== before.get(name)![i]);
}

/** The first training batch the attack sees (same seed and settings), as one [rows, T] tensor pair. */
function firstBatch(): { ids: tf.Tensor2D; mask: tf.Tensor2D; tokens: number } {
  const { rows, masks } = new TaskBatcher(task, tokenizer, { batchSize: ATTACK.batchSize, seqLen: ATTACK.seqLen!, maxTrainRows: ATTACK.maxTrainRows, seed: ATTACK.seed }).next();
  const t = rows[0].length;
  expect(rows.every((r) => r.length === t)).toBe(true);
  const ids = new Int32Array(rows.length * t);
  const mask = new Float32Array(rows.length * (t - 1));
  rows.forEach((r, i) => ids.set(r, i * t));
  masks.forEach((m, i) => mask.set(m, i * (t - 1)));
  return { ids: tf.tensor2d(ids, [rows.length, t], 'int32'), mask: tf.tensor2d(mask, [rows.length, t - 1]), tokens: mask.reduce((a, b) => a + b, 0) };
}

async function withEmulator<T>(fn: (emu: LoadedEmulator) => Promise<T>): Promise<T> {
  const emu = await loadEmulator(emulatorDir);
  try {
    applyAdapter(emu.model, await readAdapter(adapterDir));
    return await fn(emu);
  } finally {
    emu.model.dispose();
  }
}

describe('emulator privacy audit', () => {
  it('the emulator under audit has harmonizers and factored SRC blocks', async () => {
    await withEmulator(async (emu) => {
      const kinds = emu.manifest.layerMap.map((e) => (typeof e === 'object' ? e.replacedBy.kind : e));
      expect(kinds.filter((k) => k === HARMONIZER_KIND)).toHaveLength(harmonized.length);
      expect(kinds.filter((k) => k === SRC_FACTORS_KIND)).toHaveLength(factored.length);
      expect(harmonized.length).toBeGreaterThan(0);
      expect(factored.length).toBeGreaterThan(0);
    });
  });

  it('attacker (a) trains every emulator weight, harmonizers and SRC blocks included, and lowers the training loss', async () => {
    await withEmulator(async (emu) => {
      const { ids, mask, tokens } = firstBatch();
      const loss = () => tf.tidy(() => shiftedLossSum(emu.model, ids, mask).dataSync()[0] / tokens);
      const before = snapshot(emu.model);
      const lossBefore = loss();
      const r = await fineTuneAttack(emu, task, tokenizer, ATTACK, { threads: 1 });
      expect(r.steps).toBe(ATTACK.steps);
      const lossAfter = loss();
      tf.dispose([ids, mask]);
      // Two training rows, six steps: the loss on the rows trained on must fall clearly.
      expect(lossAfter).toBeLessThan(lossBefore - 0.05);
      const h = harmonized[0];
      const s = factored[0];
      for (const name of [`harmonizers.${h}.up.weight`, `harmonizers.${h}.down.weight`, `transformer.h.${s}.attn.c_attn.weight`, `transformer.h.${s}.mlp.c_fc.weight`, 'transformer.wte.weight', 'transformer.ln_f.weight', 'transformer.h.0.attn.c_attn.weight']) {
        expect(changed(before, emu.model, name), name).toBe(true);
      }
      // Nothing was left frozen.
      const frozen = [...before.keys()].filter((n) => !changed(before, emu.model, n));
      expect(frozen).toEqual([]);
    });
  }, 60_000);

  it('attacker (a) data-parallel equals one thread up to float summation order (every weight sent to and trained in the replicas)', async () => {
    const hyper = { ...ATTACK, steps: 2 };
    const weights = async (threads: number) =>
      withEmulator(async (emu) => {
        await fineTuneAttack(emu, task, tokenizer, hyper, { threads });
        return snapshot(emu.model);
      });
    const one = await weights(1);
    const two = await weights(2);
    let maxDiff = 0;
    for (const [name, a] of one) {
      const b = two.get(name)!;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    }
    // Two AdamW steps of lr ≤ 3e-4 move a weight by ≤ 6e-4; summation-order noise is orders below that.
    expect(maxDiff).toBeLessThan(2e-5);
  }, 60_000);

  it('KL to the teacher: zero against itself, and equal to a float64 recomputation from the logits', async () => {
    const teacher = await plugInModel(modelDir, adapterDir);
    try {
      await withEmulator(async (emu) => {
        const ids = tf.tensor2d(Int32Array.from([5, 17, 300, 42, 9, 1000, 7, 64, 3, 88, 12, 400]), [2, 6], 'int32');
        const mask = tf.tensor2d(Float32Array.from([1, 1, 0, 1, 1, 1, 1, 0, 1, 1]), [2, 5]);
        expect(Math.abs(klToTeacherSum(teacher, teacher, ids, mask).dataSync()[0])).toBeLessThan(1e-4);
        const got = klToTeacherSum(emu.model, teacher, ids, mask).dataSync()[0];
        const inputs = tf.slice(ids, [0, 0], [2, 5]);
        const logits = (m: CausalLM) => m.head(m.runBlocks(m.embed(inputs))).dataSync() as Float32Array;
        const p = logits(teacher);
        const q = logits(emu.model);
        const vocab = p.length / 10;
        const m = mask.dataSync();
        let want = 0;
        for (let pos = 0; pos < 10; pos++) {
          if (!m[pos]) continue;
          const lse = (a: Float32Array) => {
            let max = -Infinity;
            for (let v = 0; v < vocab; v++) max = Math.max(max, a[pos * vocab + v]);
            let s = 0;
            for (let v = 0; v < vocab; v++) s += Math.exp(a[pos * vocab + v] - max);
            return max + Math.log(s);
          };
          const lp = lse(p);
          const lq = lse(q);
          for (let v = 0; v < vocab; v++) {
            const logP = p[pos * vocab + v] - lp;
            want += Math.exp(logP) * (logP - (q[pos * vocab + v] - lq));
          }
        }
        expect(want).toBeGreaterThan(0);
        expect(Math.abs(got - want)).toBeLessThan(1e-3 * Math.max(1, want));
        tf.dispose([ids, mask, inputs]);
      });
    } finally {
      teacher.dispose();
    }
  });

  it("attacker (b) trains every emulator weight toward the plug-in's logits: its KL falls", async () => {
    const teacher = await plugInModel(modelDir, adapterDir);
    try {
      await withEmulator(async (emu) => {
        const { ids, mask, tokens } = firstBatch();
        const kl = () => tf.tidy(() => klToTeacherSum(emu.model, teacher, ids, mask).dataSync()[0] / tokens);
        const before = snapshot(emu.model);
        const klBefore = kl();
        const r = await distillAttack(emu, teacher, task, tokenizer, { ...ATTACK, lr: 1e-4 });
        expect(r.steps).toBe(ATTACK.steps);
        const klAfter = kl();
        tf.dispose([ids, mask]);
        expect(klBefore).toBeGreaterThan(0);
        expect(klAfter).toBeLessThan(0.8 * klBefore);
        expect(changed(before, emu.model, `harmonizers.${harmonized[0]}.up.weight`)).toBe(true);
        expect(changed(before, emu.model, `transformer.h.${factored[0]}.attn.c_proj.weight`)).toBe(true);
      });
    } finally {
      teacher.dispose();
    }
  }, 60_000);

  it('auditEmulator runs both attackers under the evaluation protocol and reports the best', async () => {
    const r = await auditEmulator({ emulatorDir, task: 'moby', dataRoot, adapterDir, modelDir, hyper: { ...ATTACK, steps: 2 }, eval: { maxBlocks: 1 }, threads: 1 });
    expect(r.details.map((d) => d.name)).toEqual(['finetune', 'distill']);
    expect(r.metric).toBe('perplexity');
    expect(r.attacker).toBe(Math.min(r.attackers.finetune!, r.attackers.distill!));
    expect(r.attackers[r.best]).toBe(r.attacker);
    expect(r.budget).toEqual({ steps: 2, batchSize: 2, seqLen: 24, tokens: 96 });
    for (const d of r.details) {
      expect(Number.isFinite(d.value) && d.value > 1).toBe(true);
      expect(d.start).toBe('emulator+adapter');
      expect(d.nonAdapterParameters).toBeGreaterThan(0);
      expect(d.nonAdapterParameters).toBeLessThan(d.trainedParameters);
    }
  }, 60_000);

  it('frontier with audit: every point carries its best attacker', async () => {
    const r = await runFrontier({ modelDir, stage1Dir: join(work, 'stage1'), workDir: join(work, 'frontier'), task: 'moby', dataRoot, alphas: [0.5], betas: [0.5], baselines: false, audit: true, hyper: { ...ATTACK, steps: 1 }, eval: { maxBlocks: 1 } });
    expect(r.points).toHaveLength(1);
    const p = r.points[0];
    expect(p.attacker).toBeGreaterThan(1);
    expect(Number.isFinite(p.attacker)).toBe(true);
    expect(p.emulatorDir).toBe(join(work, 'frontier', 'emulators', 'scaleot_alpha=0.5_beta=0.5'));
  }, 60_000);

  it("frontier baselines: uniform LayerDrop keeps the middle blocks `emulate --method uniform` keeps by default, the ceiling replaces nothing", async () => {
    const r = await runFrontier({ modelDir, stage1Dir: join(work, 'stage1'), workDir: join(work, 'frontier-baselines'), task: 'moby', dataRoot, alphas: [0.5], betas: [0], hyper: { ...ATTACK, steps: 1 }, eval: { maxBlocks: 1 } });
    expect(r.points.map((p) => p.kind)).toEqual(['scaleot', 'uniform-layerdrop', 'ceiling']);
    const uniform = JSON.parse(await readFile(join(r.points[1].emulatorDir, 'emulator.json'), 'utf8')) as { layerMap: unknown[] };
    const kept = uniform.layerMap.flatMap((entry, i) => (entry === 'raw' ? [i] : []));
    expect(kept).toEqual(selectKeptMiddle(adapterLayout(12, { nAdapter: 4 })));
    const ceiling = JSON.parse(await readFile(join(r.points[2].emulatorDir, 'emulator.json'), 'utf8')) as { layerMap: unknown[] };
    expect(ceiling.layerMap.every((entry) => entry === 'raw' || entry === 'adapter')).toBe(true);
  }, 60_000);

  it('bad input is a typed error before any work, and nothing is written', async () => {
    const before = await readdir(work);
    const base = { task: 'moby', dataRoot, hyper: ATTACK };
    await expect(auditEmulator({ ...base, emulatorDir: join(work, 'missing') })).rejects.toMatchObject({ code: 'EMULATOR_NOT_FOUND' });
    const bare = join(work, 'bare');
    await mkdir(bare);
    await writeFile(join(bare, 'config.json'), '{}');
    await expect(auditEmulator({ ...base, emulatorDir: bare })).rejects.toMatchObject({ code: 'MANIFEST_MISSING' });
    await expect(auditEmulator({ ...base, emulatorDir, task: join(work, 'no-such-task.json') })).rejects.toMatchObject({ code: 'INVALID_TASK' });
    await expect(auditEmulator({ ...base, emulatorDir, attackers: ['distill'] })).rejects.toMatchObject({ code: 'AUDIT_NEEDS_PLUG_IN' });
    await expect(auditEmulator({ ...base, emulatorDir, adapterDir: emulatorDir })).rejects.toMatchObject({ code: 'MANIFEST_MISSING' });
    await expect(auditEmulator({ ...base, emulatorDir, adapterDir, modelDir: fixtureModelDir('small') })).rejects.toMatchObject({ code: 'EMULATOR_SOURCE_MISMATCH' });
    // An adapter tuned on another emulator (its recorded emulator fingerprint differs).
    const foreign = join(work, 'foreign-adapter');
    await cp(adapterDir, foreign, { recursive: true });
    const manifest = JSON.parse(await readFile(join(foreign, 'adapter.json'), 'utf8'));
    manifest.parameters.emulator.sha256 = '0'.repeat(64);
    await writeFile(join(foreign, 'adapter.json'), JSON.stringify(manifest));
    await expect(auditEmulator({ ...base, emulatorDir, adapterDir: foreign })).rejects.toMatchObject({ code: 'ADAPTER_EMULATOR_MISMATCH' });
    expect((await readdir(work)).sort()).toEqual([...before, 'bare', 'foreign-adapter'].sort());
  });
});
