import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The CLI's two voices: on a terminal, human lines and one live progress bar; for machines (stdout not
// a terminal, --json, --log-format json), pino JSON only. `script` gives the command a real pty.
const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');
const cli = join(repo, 'apps/cli/dist/main.js');
const env = { ...process.env, SCALEOT_LOG_LEVEL: 'info', SCALEOT_BACKEND: 'wasm' };
const small = ['--steps', '3', '--batch', '2', '--micro-batch', '2', '--seq-len', '32', '--max-train-rows', '4', '--warmup', '1', '--lr', '5e-5'];
let work: string;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'scaleot-cli-log-'));
  await run(process.execPath, [cli, 'emulate', '--adapters', '0,1,10,11', '--drop', '3,5,7,9', '--out', join(work, 'emu'), '--json'], { env, cwd: repo });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('CLI log format', () => {
  it('on a terminal: human lines, one live bar with step, loss, lr in scientific notation and ETA; no JSON, no tfjs banner', async () => {
    const command = [process.execPath, cli, 'tune', '--emulator', join(work, 'emu'), '--task', 'moby', '--out', join(work, 'adapter-tty'), ...small].map(quote).join(' ');
    const { stdout } = await run('script', ['-qec', `stty cols 200; ${command}`, '/dev/null'], { env, cwd: repo, maxBuffer: 16 << 20 });
    expect(stdout).not.toMatch(/^\{"level"/m);
    expect(stdout).not.toContain('Hi, looks like you are running TensorFlow.js');
    expect(stdout).toContain('tfjs backend: wasm');
    // The bar is redrawn in place (carriage return + erase line) and ends complete.
    expect(stdout).toContain('\r\x1b[2K');
    expect(stdout).toMatch(/\[#+\] 3\/3 steps {2}loss \d+\.\d{4} {2}lr \d\.\d{2}e-\d+ {2}ETA \d+:\d{2}/);
    expect(stdout).not.toMatch(/lr=0\.0000/);
  });

  it('piped: pino JSON on stderr by default, and with --log-format human one readable line per event', async () => {
    const args = ['tune', '--emulator', join(work, 'emu'), '--task', 'moby', ...small];
    const piped = await run(process.execPath, [cli, ...args, '--out', join(work, 'adapter-json')], { env, cwd: repo });
    const lines = piped.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(lines.some((l) => JSON.parse(l).label === 'tune' || JSON.parse(l).done !== undefined)).toBe(true);

    const human = await run(process.execPath, [cli, ...args, '--out', join(work, 'adapter-human'), '--log-format', 'human'], { env, cwd: repo });
    const humanLines = human.stderr.trim().split('\n');
    expect(humanLines.some((l) => l.startsWith('{'))).toBe(false);
    expect(humanLines).toContain('tfjs backend: wasm');
    // Without a terminal there is no bar: progress reports are lines too, each once.
    expect(new Set(humanLines).size).toBe(humanLines.length);
  });
});
