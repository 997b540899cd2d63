import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createLogger, type Logger } from '@scaleot/core';
import { ClusterError } from './ClusterError.js';

/** A free TCP port on loopback (closed again before it is handed out). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** dist/main.js of an app workspace (resolved at run time: the apps depend on this package, not the reverse). */
export function appEntry(app: 'coordinator' | 'worker'): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve(`@scaleot/${app}/package.json`)), 'dist', 'main.js');
}

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** Resolves with the first pino record whose msg is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Spawns a coordinator or worker process with the env contract; its pino lines are parsed (and relayed to `logger`). */
export function spawnApp(app: 'coordinator' | 'worker', name: string, env: Record<string, string>, logger?: Logger): ManagedProcess {
  const log = logger ?? createLogger('local-cluster');
  const child = spawn(process.execPath, [appEntry(app)], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const records: Record<string, unknown>[] = [];
  const listeners = new Set<(r: Record<string, unknown>) => void>();
  let buffer = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      records.push(record);
      if (records.length > 500) records.shift();
      if (typeof record.level === 'number' && record.level >= 40) log.warn({ from: name, record }, String(record.msg));
      for (const l of listeners) l(record);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitForLog = (msg: string, timeoutMs = 120_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = records.find((r) => r.msg === msg);
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new ClusterError('TIMEOUT', `${name} did not log "${msg}" within ${timeoutMs} ms`, { where: name })), timeoutMs);
      const listener = (r: Record<string, unknown>) => {
        if (r.msg !== msg) return;
        clearTimeout(timer);
        listeners.delete(listener);
        resolve(r);
      };
      listeners.add(listener);
      void exited.then((code) => {
        clearTimeout(timer);
        const last = records.slice(-3).map((r) => r.msg).join(' | ');
        reject(new ClusterError('PROCESS_EXITED', `${name} exited (code ${code}) before "${msg}"; last log: ${last}`, { where: name }));
      });
    });
  return { name, child, waitForLog, exited };
}

/** SIGTERM (graceful drain), then SIGKILL after `graceMs`. */
export async function stopApp(p: ManagedProcess, graceMs = 30_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

export function uniqueQueuePrefix(name: string): string {
  return `scaleot-${name}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
