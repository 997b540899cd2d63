import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// tune/report/emulate/stage1/frontier with an existing --out refuse before any compute (they used to
// train to the end and only then refuse to write, throwing the run away).
const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = join(repo, 'apps/cli/dist/main.js');
const model = join(repo, 'models/sotu-gpt2-tiny');
const env = { ...process.env, SCALEOT_LOG_LEVEL: 'info', SCALEOT_BACKEND: 'wasm' };

async function scaleot(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env, cwd: repo, maxBuffer: 64 << 20, timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let work: string;
let emulator: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scaleot-outguard-'));
  emulator = join(work, 'emulator');
  const made = await scaleot(['emulate', '--method', 'uniform', '--model', model, '--out', emulator, '--json']);
  expect(made.code).toBe(0);
}, 300_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('existing --out', () => {
  it.each([
    ['tune', (out: string) => ['tune', '--emulator', emulator, '--task', 'moby', '--data-root', join(repo, 'data'), '--steps', '30', '--out', out]],
    ['report', (out: string) => ['report', '--model', model, '--task', 'moby', '--data-root', join(repo, 'data'), '--method', 'uniform', '--steps', '30', '--out', out]],
    ['emulate', (out: string) => ['emulate', '--method', 'uniform', '--model', model, '--out', out]],
    ['stage1', (out: string) => ['stage1', '--model', model, '--steps', '30', '--out', out]],
    ['frontier', (out: string) => ['frontier', '--model', model, '--stage1', join(work, 'stage1-none'), '--task', 'moby', '--out', out]],
  ])('%s refuses it before any compute, naming the flag and --overwrite', async (name, args) => {
    const out = join(work, `out-${name}`);
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'earlier-result.json'), '{}');
    const r = await scaleot(args(out));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[OUTPUT_EXISTS]');
    expect(r.stderr).toMatch(/--overwrite \(nothing was computed\)/);
    // No step was taken: no progress record of any training loop.
    expect(r.stderr).not.toMatch(/"step":\s*\d/);
    expect(r.stderr).not.toMatch(/tfjs backend/);
    expect(await readdir(out)).toEqual(['earlier-result.json']);
  });
});
