import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { environmentHelp, freePort } from '@scaleot/cluster';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, REPO } from './helpers.js';

// The apps' startup contract: every setting checked before "ready", one clear line per problem, a
// non-zero exit and no stack trace.
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaleot-startup-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(app: 'coordinator' | 'worker', env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    const proc = spawn(process.execPath, [resolve(REPO, `apps/${app}/dist/main.js`)], { env: { PATH: process.env.PATH, SCALEOT_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr });
    });
  });
}

describe('startup checks', () => {
  it('coordinator: reports every missing or broken setting on its own line, exits 2, never says ready', async () => {
    const settings = join(dir, 'settings.json');
    await writeFile(settings, JSON.stringify({ tune: { stpes: 10 } }));
    const { code, stderr } = await run('coordinator', { SCALEOT_STORAGE_DIR: join(dir, 'missing'), SCALEOT_COORDINATOR_CONFIG: settings, SCALEOT_OPERATOR_TOKENS_FILE: join(dir, 'no-operators.json'), SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_HTTP_PORT: String(await freePort()), SCALEOT_ZMQ_PARAMS_PORT: String(await freePort()), SCALEOT_ZMQ_RESULTS_PORT: String(await freePort()) });
    expect(code).toBe(2);
    const lines = stderr.trim().split('\n');
    expect(lines.some((l) => /^scaleot-coordinator: SCALEOT_API_TOKENS_FILE is not set/.test(l))).toBe(true);
    expect(lines.some((l) => /^scaleot-coordinator: SCALEOT_STORAGE_DIR: .*missing does not exist/.test(l))).toBe(true);
    expect(lines.some((l) => /^scaleot-coordinator: SCALEOT_COORDINATOR_CONFIG: .*tune\.stpes is not a known field/.test(l))).toBe(true);
    expect(lines.some((l) => /^scaleot-coordinator: SCALEOT_OPERATOR_TOKENS_FILE: .*no-operators\.json does not exist/.test(l))).toBe(true);
    expect(stderr).not.toMatch(/coordinator ready/);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stderr).not.toMatch(/"level":60/);
  });

  it('coordinator: a Redis that does not answer is one clear line, not a hang', async () => {
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ t: 'x'.repeat(32) }));
    const { code, stderr } = await run('coordinator', { SCALEOT_STORAGE_DIR: dir, SCALEOT_API_TOKENS_FILE: tokens, SCALEOT_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, SCALEOT_HTTP_PORT: '0', SCALEOT_ZMQ_PARAMS_PORT: '0', SCALEOT_ZMQ_RESULTS_PORT: '0' });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^scaleot-coordinator: SCALEOT_REDIS_URL: no Redis answers at redis:\/\/127\.0\.0\.1:\d+/m);
  });

  it('worker: a second worker on a host whose metrics port is taken gets a clear error; port 0 picks a free one', async () => {
    const busy: Server = createServer();
    const port = await new Promise<number>((r) => busy.listen(0, '0.0.0.0', () => r((busy.address() as { port: number }).port)));
    try {
      const { code, stderr } = await run('worker', { SCALEOT_STORAGE_DIR: dir, SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_METRICS_PORT: String(port) });
      expect(code).toBe(2);
      expect(stderr).toContain(`scaleot-worker: SCALEOT_METRICS_PORT: port ${port} is in use (another worker on this host?)`);
      expect(stderr).not.toMatch(/EADDRINUSE|\n\s+at /);
    } finally {
      busy.close();
    }
    expect(environmentHelp('worker', '')).toMatch(/SCALEOT_METRICS_PORT .*0 picks a free port/);
  });

  it('worker: a malformed SCALEOT_WORKER_MEMORY_BYTES (the budget it reports for stage planning) is one clear line', async () => {
    const { code, stderr } = await run('worker', { SCALEOT_STORAGE_DIR: dir, SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_METRICS_PORT: '0', SCALEOT_WORKER_MEMORY_BYTES: '12GB' });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^scaleot-worker: .*SCALEOT_WORKER_MEMORY_BYTES must be a positive integer number of bytes, got "12GB"$/m);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('documents every setting the apps read in their --help', async () => {
    const sources = ['apps/coordinator/src', 'apps/worker/src', 'packages/cluster/src'];
    const read = new Set<string>();
    for (const src of sources) {
      for (const name of await readdir(resolve(REPO, src))) {
        if (!(await stat(resolve(REPO, src, name))).isFile()) continue;
        for (const m of (await readFile(resolve(REPO, src, name), 'utf8')).matchAll(/SCALEOT_[A-Z_]+/g)) read.add(m[0]);
      }
    }
    const help = environmentHelp('coordinator', '') + environmentHelp('worker', '');
    const undocumented = [...read].filter((name) => !help.includes(`${name} `) && !['SCALEOT_TEST_VERBOSE'].includes(name));
    expect(undocumented).toEqual([]);
    expect(help).toMatch(/SCALEOT_HTTP_PORT/);
    expect(help).toMatch(/SCALEOT_ZMQ_RESULTS_PORT/);
  });
});
