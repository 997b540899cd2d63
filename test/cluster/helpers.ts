import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { expect } from 'vitest';

export const REPO = resolve(import.meta.dirname, '../..');
export const MODEL_DIR = resolve(REPO, 'models/sotu-gpt2-tiny');
export const DATA_ROOT = resolve(REPO, 'data');
export const REDIS_URL = 'redis://127.0.0.1:6379';

export function uniquePrefix(name: string): string {
  return `scaleot-test-${name}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface SpawnedProcess {
  proc: ChildProcess;
  pid: number;
  /** Resolves with the first log record matching `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Spawns an app's dist/main.js with the env contract; logs are pino JSON lines on stderr. */
export function spawnApp(app: 'worker' | 'coordinator', env: Record<string, string>): SpawnedProcess {
  const proc = spawn(process.execPath, [resolve(REPO, `apps/${app}/dist/main.js`)], {
    env: { ...process.env, SCALEOT_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const listeners = new Set<(rec: Record<string, unknown>) => void>();
  let buffer = '';
  proc.stderr!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        for (const l of listeners) l(rec);
      } catch {
        if (process.env.SCALEOT_TEST_VERBOSE) process.stderr.write(`[${app}] ${line}\n`);
      }
    }
  });
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  const waitForLog = (msg: string, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((res, rej) => {
      const found = logs.find((r) => r.msg === msg);
      if (found) return res(found);
      const timer = setTimeout(() => rej(new Error(`${app} ${proc.pid}: no "${msg}" log within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`)), timeoutMs);
      const listener = (rec: Record<string, unknown>) => {
        if (rec.msg === msg) {
          clearTimeout(timer);
          listeners.delete(listener);
          res(rec);
        }
      };
      listeners.add(listener);
      void exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`${app} exited (${code}) before logging "${msg}"; last: ${JSON.stringify(logs.slice(-3))}`));
      });
    });
  return { proc, pid: proc.pid!, waitForLog, logs, exited };
}

export async function stopProcess(p: SpawnedProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill(signal);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(timer);
}

/** Tiny stage-1 settings: a few seconds per round on two loaded cores. */
export const TINY_STAGE1 = {
  nAdapter: 4,
  rank: 16,
  steps: 3,
  batchSize: 4,
  microBatchSize: 2,
  seqLen: 32,
  rlBatchSize: 2,
  candidates: 3,
  warmupSteps: 1,
  lr: 3e-3,
  eta: 0.05,
  seed: 7,
} as const;

/** Polls `probe` every `everyMs` until it returns a value; throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Asserts two stage-1 harmonizer sets hold the same tensors, max |Δ| ≤ relTol · max(1, max |reference|). */
export function expectSameHarmonizers(actual: Map<string, { data: Float32Array }>, reference: Map<string, { data: Float32Array }>, relTol: number): void {
  expect([...actual.keys()].sort()).toEqual([...reference.keys()].sort());
  let maxDiff = 0;
  let maxAbs = 0;
  for (const [name, { data }] of reference) {
    const other = actual.get(name)!.data;
    for (let k = 0; k < data.length; k++) {
      maxDiff = Math.max(maxDiff, Math.abs(data[k] - other[k]));
      maxAbs = Math.max(maxAbs, Math.abs(data[k]));
    }
  }
  expect(maxAbs).toBeGreaterThan(0);
  expect(maxDiff).toBeLessThan(relTol * Math.max(1, maxAbs));
}
