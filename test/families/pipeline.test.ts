import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, SafetensorsFile } from '@scaleot/checkpoint';
import { FIXTURES_DIR, REPO_ROOT } from '../support/fixtures.js';

// Every path of the offsite pipeline on each family's tiny HF checkpoint, through the CLI a user runs:
// ScaleOT (stage 1 → emulate (α 0.5, β 0.5) → tune → plugin → eval) and uniform LayerDrop.
const run = promisify(execFile);
const cli = join(REPO_ROOT, 'apps/cli/dist/main.js');
const env = { ...process.env, SCALEOT_LOG_LEVEL: 'warn', SCALEOT_BACKEND: 'wasm' };

async function scaleot(args: string[]): Promise<Record<string, unknown>> {
  try {
    const { stdout } = await run(process.execPath, [cli, ...args, '--json'], { env, cwd: REPO_ROOT, maxBuffer: 64 << 20 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  } catch (err) {
    const e = err as { code: number; stderr: string };
    throw new Error(`scaleot ${args[0]} exited ${e.code}: ${e.stderr.slice(-2000)}`);
  }
}

// Distillation reads the whole SOTU corpus (~40 s here): once, on OPT.
const FAMILIES = [
  { name: 'opt', dir: 'families/opt-tiny', dtype: 'F16', shards: 2, distill: true },
  { name: 'llama', dir: 'families/llama-tiny', dtype: 'BF16', shards: 1, distill: false },
  { name: 'llama3', dir: 'families/llama3-tiny', dtype: 'BF16', shards: 1, distill: false },
] as const;

// 4 blocks: adapters 0 and 3, middle 1 and 2 (one group; α = 0.5 replaces one of them).
const ADAPTERS = ['--adapters', '0,3'];
const TUNE = ['--task', 'moby', '--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1'];
const EVAL = ['--task', 'moby', '--max-blocks', '1'];

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scaleot-families-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The plug-in output has the source's files, tensor names, shapes, dtypes and shards; non-adapter tensors are byte-identical. */
async function expectPluggedLikeSource(sourceDir: string, pluggedDir: string, adapterBlocks: number[], blockOf: (name: string) => number | undefined): Promise<number> {
  const source = await Checkpoint.open(sourceDir);
  const plugged = await Checkpoint.open(pluggedDir);
  let changed = 0;
  try {
    expect(plugged.shardFiles().map((f) => f.slice(pluggedDir.length))).toEqual(source.shardFiles().map((f) => f.slice(sourceDir.length)));
    expect(plugged.names()).toEqual(source.names());
    for (const name of source.names()) {
      const [a, b] = [source.info(name), plugged.info(name)];
      expect({ name, dtype: b.dtype, shape: b.shape, offsets: b.dataOffsets }).toEqual({ name, dtype: a.dtype, shape: a.shape, offsets: a.dataOffsets });
      const same = Buffer.from(await plugged.readRaw(name)).equals(Buffer.from(await source.readRaw(name)));
      const block = blockOf(name);
      if (block === undefined || !adapterBlocks.includes(block)) expect(same, `${name} must be byte-identical`).toBe(true);
      else if (!same) changed++;
    }
    for (const file of ['config.json', 'tokenizer.json', ...(source.shardFiles().length > 1 ? ['model.safetensors.index.json'] : [])]) {
      expect((await readFile(join(pluggedDir, file))).equals(await readFile(join(sourceDir, file))), file).toBe(true);
    }
  } finally {
    await source.close();
    await plugged.close();
  }
  return changed;
}

describe.each(FAMILIES)('$name tiny fixture through the whole pipeline', ({ name, dir, dtype, shards, distill: withDistill }) => {
  const model = () => join(FIXTURES_DIR, dir);
  const blockOf = (tensor: string) => {
    const m = /(?:^|\.)layers\.(\d+)\./.exec(tensor);
    return m ? Number(m[1]) : undefined;
  };

  it('ScaleOT: stage 1 → emulate α 0.5 β 0.5 → tune → plugin → eval', { timeout: 600_000 }, async () => {
    const stage1 = join(work, `${name}-stage1`);
    const s1 = await scaleot(['stage1', '--model', model(), '--out', stage1, ...ADAPTERS, '--steps', '3', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--rl-batch', '2', '--warmup', '1', '--max-documents', '4']);
    expect(s1.scores).toHaveLength(4);
    const emuDir = join(work, `${name}-scaleot-emu`);
    const emu = await scaleot(['emulate', '--method', 'scaleot', '--model', model(), '--stage1', stage1, '--alpha', '0.5', '--beta', '0.5', ...ADAPTERS, '--out', emuDir]);
    const plan = emu.plan as { replaced: number[]; raw: number[] };
    expect(plan.replaced).toHaveLength(1);
    expect(plan.raw).toHaveLength(1);
    const manifest = JSON.parse(await readFile(join(emuDir, 'emulator.json'), 'utf8'));
    const src = manifest.compression.src as { targets: string[]; ranks: Record<string, number> };
    // SRC defaults to the family's attention projections, stored [out, in] (nn.Linear).
    expect(src.targets.every((t) => t.startsWith('self_attn.'))).toBe(true);
    expect(Object.keys(src.ranks)).toHaveLength(4);
    // Harmonizer-replaced blocks never leave the owner.
    const stored = (await SafetensorsFile.readAllFloat32(join(emuDir, 'model.safetensors'))).keys();
    expect([...stored].filter((t) => blockOf(t) === plan.replaced[0])).toEqual([]);

    const adapter = join(work, `${name}-scaleot-adapter`);
    expect(await scaleot(['tune', '--emulator', emuDir, ...TUNE, '--out', adapter])).toMatchObject({ completed: true, steps: 2 });
    const plugged = join(work, `${name}-scaleot-plugged`);
    const plug = await scaleot(['plugin', '--model', model(), '--adapter', adapter, '--out', plugged]);
    expect((plug.replaced as string[]).every((t) => [0, 3].includes(blockOf(t)!))).toBe(true);
    expect(await expectPluggedLikeSource(model(), plugged, [0, 3], blockOf)).toBeGreaterThan(0);
    expect((await readdir(plugged)).filter((f) => f.endsWith('.safetensors'))).toHaveLength(shards);
    const plugInfo = await Checkpoint.open(plugged);
    expect(plugInfo.info(plugInfo.names()[0]).dtype).toBe(dtype);
    await plugInfo.close();
    for (const target of [['--model', plugged], ['--emulator', emuDir]]) {
      const ev = await scaleot(['eval', ...target, ...EVAL]);
      expect(ev.metric).toBe('perplexity');
      expect(Number.isFinite(ev.value) && (ev.value as number) > 1).toBe(true);
    }
  });

  it(`uniform LayerDrop${withDistill ? ' + distillation' : ''}: emulate --drop → tune (LoRA) → plugin → eval`, { timeout: 600_000 }, async () => {
    const emuDir = join(work, `${name}-uniform-emu`);
    const distill = withDistill ? ['--distill', '--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--warmup', '1'] : [];
    await scaleot(['emulate', '--model', model(), ...ADAPTERS, '--drop', '2', ...distill, '--out', emuDir]);
    const manifest = JSON.parse(await readFile(join(emuDir, 'emulator.json'), 'utf8'));
    expect(manifest.layerMap).toEqual(['adapter', 'raw', 'dropped', 'adapter']);
    if (withDistill) {
      expect(manifest.parameters.distill).toMatchObject({ corpus: 'sotu' });
      // The distilled middle block moved away from the source's weights.
      const source = await Checkpoint.open(model());
      let moved = 0;
      for (const [tensor, w] of await SafetensorsFile.readAllFloat32(join(emuDir, 'model.safetensors'))) {
        if (blockOf(tensor) !== 1) continue;
        const original = await source.readFloat32(tensor);
        if (w.data.some((v, i) => v !== original[i])) moved++;
      }
      await source.close();
      expect(moved).toBeGreaterThan(0);
    }
    const adapter = join(work, `${name}-uniform-adapter`);
    expect(await scaleot(['tune', '--emulator', emuDir, ...TUNE, '--lora-rank', '4', '--out', adapter])).toMatchObject({ completed: true });
    const plugged = join(work, `${name}-uniform-plugged`);
    await scaleot(['plugin', '--model', model(), '--adapter', adapter, '--out', plugged]);
    expect(await expectPluggedLikeSource(model(), plugged, [0, 3], blockOf)).toBeGreaterThan(0);
    const ev = await scaleot(['eval', '--model', plugged, ...EVAL]);
    expect(Number.isFinite(ev.value)).toBe(true);
  });
});
