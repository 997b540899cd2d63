import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastJson, scaleot } from './runCli.js';

// `scaleot report --audit` and `scaleot audit` end to end on the bundled tiny model at a tiny budget:
// the report's artifacts (emulator, tuned adapter) are what the audit command then attacks.

const SMALL = ['--steps', '2', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1', '--max-blocks', '1'];

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scaleot-cli-audit-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('scaleot audit', () => {
  it('--help documents the attackers, what they are given, and the flags shared with tune', async () => {
    const r = await scaleot(['audit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: scaleot audit');
    for (const flag of ['--emulator', '--task', '--adapter', '--model', '--attackers', '--out', '--json', '--steps', '--batch', '--seq-len', '--lr', '--warmup', '--grad-clip', '--seed', '--threads', '--max-blocks']) expect(r.stdout).toContain(flag);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('what a data owner legitimately holds');
    expect(text).toContain("the plug-in's observable outputs");
  });

  it('report --audit adds the attacker next to the five numbers (one thread); audit attacks its emulator and writes its result', async () => {
    const reportDir = join(work, 'report');
    const rep = await scaleot(['report', '--method', 'uniform', '--task', 'moby', '--adapters', '0,1,10,11', '--drop', '3,5,7,9', '--out', reportDir, '--no-full-fine-tune', '--audit', ...SMALL, '--json'], { SCALEOT_THREADS: '1' });
    expect(rep.code, rep.stderr).toBe(0);
    const report = lastJson(rep.stdout);
    for (const key of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in', 'attacker']) expect(Number.isFinite(report[key]), key).toBe(true);
    const attackers = report.attackers as Record<string, number>;
    expect(Object.keys(attackers).sort()).toEqual(['distill', 'finetune']);
    expect(report.attacker).toBe(Math.min(attackers.finetune, attackers.distill));
    const saved = JSON.parse(await readFile(join(reportDir, 'report.json'), 'utf8'));
    expect(saved.attacker).toBe(report.attacker);
    const md = await readFile(join(reportDir, 'report.md'), 'utf8');
    expect(md).toContain('attacker (best)');
    expect(md).toContain('privacy audit');

    const auditDir = join(work, 'audit');
    const aud = await scaleot(['audit', '--emulator', join(reportDir, 'emulator'), '--adapter', join(reportDir, 'adapter'), '--task', 'moby', '--attackers', 'finetune', '--out', auditDir, '--threads', '1', ...SMALL, '--json']);
    expect(aud.code, aud.stderr).toBe(0);
    const out = lastJson(aud.stdout);
    expect(out).toMatchObject({ task: 'moby', metric: 'perplexity', best: 'finetune', budget: { steps: 2, batchSize: 2, seqLen: 32, tokens: 128 } });
    expect(Object.keys(out.attackers as object)).toEqual(['finetune']);
    expect((out.details as Array<{ threads: number; nonAdapterParameters: number }>)[0]).toMatchObject({ threads: 1 });
    expect((out.details as Array<{ nonAdapterParameters: number }>)[0].nonAdapterParameters).toBeGreaterThan(0);
    expect((await readdir(auditDir)).sort()).toEqual(['audit.json', 'audit.md']);
    expect(JSON.parse(await readFile(join(auditDir, 'audit.json'), 'utf8')).attacker).toBe(out.attacker);
  }, 120_000);

  it('bad input: a typed error and exit 2 before any work, nothing written', async () => {
    const bare = join(work, 'bare-emulator');
    await mkdir(bare, { recursive: true });
    await writeFile(join(bare, 'config.json'), '{}');
    const cases: Array<[string[], RegExp]> = [
      [['--emulator', join(work, 'no-such-emulator')], /EMULATOR_NOT_FOUND/],
      [['--emulator', bare], /MANIFEST_MISSING/],
      [['--emulator', bare, '--lora-rank', '4'], /LoRA does not apply/],
    ];
    for (const [args, message] of cases) {
      const out = join(work, `never-${cases.findIndex((c) => c[0] === args)}`);
      const r = await scaleot(['audit', ...args, '--out', out, ...SMALL]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      await expect(readdir(out)).rejects.toThrow();
    }
    // An unknown task on a real emulator (the report test's): the task is checked before any training.
    const emu = join(work, 'report', 'emulator');
    const out = join(work, 'never-task');
    const r = await scaleot(['audit', '--emulator', emu, '--task', join(work, 'no-such-task.json'), '--out', out, ...SMALL]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/INVALID_TASK/);
    expect(r.stderr).toContain('no-such-task.json');
    await expect(readdir(out)).rejects.toThrow();
  });
});
