import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastJson, scaleot } from './runCli.js';


let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scaleot-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('scaleot CLI', () => {
  it.each(['eval', 'emulate', 'tune', 'plugin', 'report', 'audit', 'stage1', 'frontier', 'demo'])('%s --help documents its flags', async (cmd) => {
    const r = await scaleot([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: scaleot ${cmd}`);
    expect(r.stdout).toContain('--json');
  });

  it('eval --json prints {task, metric, value} last', async () => {
    const r = await scaleot(['eval', '--task', 'moby', '--max-blocks', '2', '--json']);
    expect(r.code).toBe(0);
    const out = lastJson(r.stdout);
    expect(out.task).toBe('moby');
    expect(out.metric).toBe('perplexity');
    expect(out.value as number).toBeGreaterThan(1);
    expect(out.count).toBe(2 * 256);
  });

  it('rejects adapter lists that repeat a block or leave the model with a clear message, exit 2, nothing written', async () => {
    const out = join(work, 'bad-emulator');
    for (const list of ['0,0,11', '0,12']) {
      const r = await scaleot(['emulate', '--adapters', list, '--out', out]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--adapters: adapter blocks must be distinct blocks of the 12-block model/);
      await expect(readdir(out)).rejects.toThrow();
    }
  });

  it('rejects an unknown task path with a typed error', async () => {
    const r = await scaleot(['eval', '--task', join(work, 'nope.json'), '--max-blocks', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nope.json');
  });

  it('emulate -> tune -> plugin -> eval, and report --json gives the five numbers', async () => {
    const emu = join(work, 'emu');
    const adapter = join(work, 'adapter');
    const plugged = join(work, 'plugged');
    const small = ['--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1'];
    expect((await scaleot(['emulate', '--adapters', '0,1,10,11', '--drop', '3,5,7,9', '--out', emu, '--json'])).code).toBe(0);
    const tuned = await scaleot(['tune', '--emulator', emu, '--task', 'moby', '--out', adapter, ...small, '--json']);
    expect(tuned.code).toBe(0);
    expect(lastJson(tuned.stdout)).toMatchObject({ completed: true, steps: 2 });
    const plug = await scaleot(['plugin', '--adapter', adapter, '--out', plugged, '--json']);
    expect(plug.code).toBe(0);
    expect((lastJson(plug.stdout).replaced as string[]).length).toBe(4 * 12);
    const ev = await scaleot(['eval', '--model', plugged, '--task', 'moby', '--max-blocks', '1', '--json']);
    expect(ev.code).toBe(0);

    const rep = await scaleot(['report', '--method', 'uniform', '--task', 'moby', '--adapters', '0,1,10,11', '--drop', '3,5,7,9', '--out', join(work, 'report'), '--max-blocks', '2', '--no-full-fine-tune', ...small, '--json']);
    expect(rep.code).toBe(0);
    const report = lastJson(rep.stdout);
    for (const key of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in']) expect(Number.isFinite(report[key])).toBe(true);
    expect(report.full_fine_tuned).toBeNull();
    const saved = JSON.parse(await readFile(join(work, 'report', 'report.json'), 'utf8'));
    expect(saved.plug_in).toBe(report.plug_in);
  });

  it('stage1 -> emulate --method scaleot -> report --method scaleot --json', async () => {
    const stage1 = join(work, 'stage1');
    const s1 = await scaleot(['stage1', '--out', stage1, '--steps', '3', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--rl-batch', '2', '--warmup', '1', '--max-documents', '4', '--json']);
    expect(s1.code).toBe(0);
    const scores = lastJson(s1.stdout).scores as number[];
    expect(scores).toHaveLength(12);
    expect(await readdir(stage1)).toEqual(expect.arrayContaining(['manifest.json', 'scores.json', 'harmonizers.safetensors', 'stage1-log.jsonl', 'importance.svg', 'trajectories.svg']));

    const emu = await scaleot(['emulate', '--method', 'scaleot', '--stage1', stage1, '--alpha', '0.5', '--beta', '0.5', '--adapters', '0,1,10,11', '--src-targets', 'attn.c_attn,mlp.c_fc', '--out', join(work, 'scaleot-emu'), '--json']);
    expect(emu.code).toBe(0);
    const plan = lastJson(emu.stdout).plan as { replaced: number[]; raw: number[] };
    expect(plan.replaced).toHaveLength(4); // round(0.5·4) in each of the two groups of 4 middle blocks
    expect(plan.raw).toHaveLength(4);
    const src = JSON.parse(await readFile(join(work, 'scaleot-emu', 'emulator.json'), 'utf8')).compression.src as { targets: string[]; ranks: Record<string, number> };
    expect(src.targets).toEqual(['attn.c_attn', 'mlp.c_fc']);
    expect(Object.keys(src.ranks).sort()).toEqual(plan.raw.flatMap((i) => [`transformer.h.${i}.attn.c_attn.weight`, `transformer.h.${i}.mlp.c_fc.weight`]).sort());

    // --select gradot: the same α per group, chosen by the measurement the manifest records.
    const gradot = await scaleot(['emulate', '--method', 'scaleot', '--stage1', stage1, '--alpha', '0.5', '--adapters', '0,1,10,11', '--select', 'gradot', '--select-batch', '2', '--select-seq-len', '32', '--out', join(work, 'gradot-emu'), '--json']);
    expect(gradot.code, gradot.stderr).toBe(0);
    const gPlan = lastJson(gradot.stdout).plan as { replaced: number[]; groups: number[][] };
    for (const g of gPlan.groups) expect(g.filter((i) => gPlan.replaced.includes(i))).toHaveLength(2);
    const selection = JSON.parse(await readFile(join(work, 'gradot-emu', 'emulator.json'), 'utf8')).parameters.selection as { criterion: string; batchSize: number; seqLen: number; blocks: { index: number; keepScore: number }[] };
    expect(selection).toMatchObject({ criterion: 'gradot', batchSize: 2, seqLen: 32 });
    expect(selection.blocks.map((b) => b.index)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    const keep = new Map(selection.blocks.map((b) => [b.index, b.keepScore]));
    for (const g of gPlan.groups) expect([...g].sort((a, b) => keep.get(a)! - keep.get(b)! || a - b).slice(0, 2).sort((a, b) => a - b)).toEqual(g.filter((i) => gPlan.replaced.includes(i)));

    const small = ['--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1'];
    // A ScaleOT emulator is usable by the data owner's own commands (its harmonizer and SRC blocks are registered there too).
    const evaluated = await scaleot(['eval', '--emulator', join(work, 'scaleot-emu'), '--task', 'moby', '--max-blocks', '1', '--json']);
    expect(evaluated.stderr).not.toContain('UNKNOWN_BLOCK_KIND');
    expect(evaluated.code).toBe(0);
    expect(Number.isFinite(lastJson(evaluated.stdout).value)).toBe(true);
    const tuned = await scaleot(['tune', '--emulator', join(work, 'scaleot-emu'), '--task', 'moby', '--out', join(work, 'scaleot-adapter'), ...small, '--json']);
    expect(tuned.code).toBe(0);

    const rep = await scaleot(['report', '--method', 'scaleot', '--stage1', stage1, '--alpha', '0.5', '--beta', '0', '--task', 'moby', '--out', join(work, 'scaleot-report'), '--max-blocks', '2', '--no-full-fine-tune', ...small, '--json']);
    expect(rep.code).toBe(0);
    const report = lastJson(rep.stdout);
    expect(report).toMatchObject({ method: 'scaleot', alpha: 0.5, beta: 0 });
    for (const key of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in']) expect(Number.isFinite(report[key])).toBe(true);
  });

  it('CRaSh placement (adapters 0,4,7,11): stage1 -> emulate -> report for ScaleOT and uniform LayerDrop, plug-in at the same blocks', async () => {
    const stage1 = join(work, 'crash-stage1');
    const s1 = await scaleot(['stage1', '--adapters', '0,4,7,11', '--out', stage1, '--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--rl-batch', '2', '--warmup', '1', '--max-documents', '4', '--json']);
    expect(s1.code, s1.stderr).toBe(0);
    const layout = JSON.parse(await readFile(join(stage1, 'manifest.json'), 'utf8')).layout as { bottom: number[]; top: number[]; middle: number[]; groups: number[][] };
    // Groups are cut inside each run of middle blocks between adapters.
    expect(layout).toMatchObject({ bottom: [0], top: [4, 7, 11], middle: [1, 2, 3, 5, 6, 8, 9, 10], groups: [[1, 2, 3], [5, 6], [8, 9, 10]] });

    const emu = await scaleot(['emulate', '--method', 'scaleot', '--stage1', stage1, '--alpha', '0.5', '--adapters', '0,4,7,11', '--out', join(work, 'crash-emu'), '--json']);
    expect(emu.code, emu.stderr).toBe(0);
    const plan = lastJson(emu.stdout).plan as { replaced: number[]; groups: number[][] };
    expect(plan.groups).toEqual(layout.groups);
    // round(0.5·3) = 2, round(0.5·2) = 1, round(0.5·3) = 2 per segment.
    expect(plan.groups.map((g) => g.filter((i) => plan.replaced.includes(i)).length)).toEqual([2, 1, 2]);
    const manifest = JSON.parse(await readFile(join(work, 'crash-emu', 'emulator.json'), 'utf8')) as { adapter: { bottom: number[]; top: number[] }; layerMap: unknown[] };
    expect(manifest.adapter).toMatchObject({ bottom: [0], top: [4, 7, 11] });
    expect([0, 4, 7, 11].map((i) => manifest.layerMap[i])).toEqual(['adapter', 'adapter', 'adapter', 'adapter']);

    const small = ['--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1', '--max-blocks', '2', '--no-full-fine-tune', '--json'];
    const rep = await scaleot(['report', '--method', 'scaleot', '--stage1', stage1, '--alpha', '0.5', '--adapters', '0,4,7,11', '--task', 'moby', '--out', join(work, 'crash-report'), ...small]);
    expect(rep.code, rep.stderr).toBe(0);
    const uni = await scaleot(['report', '--method', 'uniform', '--adapters', '0,4,7,11', '--drop', '2,5,9', '--task', 'moby', '--out', join(work, 'crash-uniform'), ...small]);
    expect(uni.code, uni.stderr).toBe(0);
    for (const r of [lastJson(rep.stdout), lastJson(uni.stdout)]) {
      for (const key of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in']) expect(Number.isFinite(r[key])).toBe(true);
    }
    // The tuned adapter travels under its original indices: exactly the four adapter blocks, nothing else.
    const adapter = JSON.parse(await readFile(join(work, 'crash-report', 'adapter', 'adapter.json'), 'utf8')) as { tensors: string[] };
    expect([...new Set(adapter.tensors.map((t) => Number(/^transformer\.h\.(\d+)\./.exec(t)?.[1])))].sort((a, b) => a - b)).toEqual([0, 4, 7, 11]);
    // The plug-in carries the tuned blocks at 0, 4, 7, 11 and the original weights everywhere else.
    const { openModelCheckpoint } = await import('@scaleot/model');
    const read = async (dir: string, name: string): Promise<Float32Array> => {
      const { checkpoint, names } = await openModelCheckpoint(dir);
      try {
        return await checkpoint.readFloat32(names.get(name)!);
      } finally {
        await checkpoint.close();
      }
    };
    const source = JSON.parse(await readFile(join(work, 'crash-report', 'report.json'), 'utf8')).artifacts.modelDir as string;
    for (let i = 0; i < 12; i++) {
      const name = `transformer.h.${i}.mlp.c_fc.weight`;
      const same = Buffer.from((await read(join(work, 'crash-report', 'plugged'), name)).buffer).equals(Buffer.from((await read(source, name)).buffer));
      expect(same, `block ${i}`).toBe(![0, 4, 7, 11].includes(i));
    }
  });

  it('frontier --from charts the reports written above without running anything, and reads its own frontier.json back', async () => {
    const uniform = JSON.parse(await readFile(join(work, 'report', 'report.json'), 'utf8'));
    const scaleotReport = JSON.parse(await readFile(join(work, 'scaleot-report', 'report.json'), 'utf8'));
    const out = join(work, 'frontier-from');
    // A file and a directory holding one.
    const r = await scaleot(['frontier', '--from', `${join(work, 'report', 'report.json')},${join(work, 'scaleot-report')}`, '--stage1', join(work, 'stage1'), '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = lastJson(r.stdout) as { points: { label: string; kind: string; emulator_fine_tuned: number; plug_in: number }[]; task: string; sources: string[] };
    expect(result.task).toBe('moby');
    expect(result.points.map((p) => [p.label, p.kind, p.emulator_fine_tuned, p.plug_in])).toEqual([
      ['uniform LayerDrop', 'uniform-layerdrop', uniform.emulator_fine_tuned, uniform.plug_in],
      ['scaleot α=0.5 β=0', 'scaleot', scaleotReport.emulator_fine_tuned, scaleotReport.plug_in],
    ]);
    expect((await readdir(out)).sort()).toEqual(['frontier.html', 'frontier.json', 'frontier.svg', 'importance.svg']);
    const svg = await readFile(join(out, 'frontier.svg'), 'utf8');
    for (const label of ['uniform LayerDrop', 'scaleot α=0.5 β=0']) expect(svg).toContain(label);
    expect(await readFile(join(out, 'frontier.html'), 'utf8')).toContain('Reports charted');
    // The frontier it wrote is itself a report to chart.
    const again = await scaleot(['frontier', '--from', out, '--out', join(work, 'frontier-again'), '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((lastJson(again.stdout).points as { label: string }[]).map((p) => p.label)).toEqual(['uniform LayerDrop', 'scaleot α=0.5 β=0']);
    expect(await readdir(join(work, 'frontier-again'))).not.toContain('importance.svg');
    // Neither a stage-1 run nor reports: a usage error, nothing written.
    const none = await scaleot(['frontier', '--out', join(work, 'frontier-none')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('give --stage1 DIR to run a frontier, or --from REPORTS');
    await expect(readdir(join(work, 'frontier-none'))).rejects.toThrow();
  });

  it('rejects β outside [0, 1) before doing any work', async () => {
    const r = await scaleot(['emulate', '--method', 'scaleot', '--beta', '1', '--out', join(work, 'never')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('expected a number in [0, 1)');
    await expect(readdir(join(work, 'never'))).rejects.toThrow();
  });
});

