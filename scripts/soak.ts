#!/usr/bin/env tsx
/**
 * `npm run soak`: load, chaos and fuzz against a real coordinator, two workers and a test-owned Redis
 * (AOF, password, its own port), all on loopback. Bounded in count (SOAK_REQUESTS, default 100) and in
 * time (SOAK_TIMEOUT_S, default 2400); stops by itself and removes what it started.
 *
 * - SOAK_REQUESTS small managed tuning requests from 10 tenants; requests 2k and 2k+1 (two tenants) share
 *   preset and seed, so their reports must be equal whatever faults hit either.
 * - Faults while they run: kill -9 a worker twice (restarted), kill -9 the coordinator once (restarted),
 *   kill -9 Redis once (restarted on its AOF).
 * - HTTP fuzz (>= 1000 requests from /openapi.json + mutations), upload fuzz (>= 200 malformed adapters)
 *   and wire fuzz (>= 200 garbled ZeroMQ messages) against the running processes.
 * Prints a JSON summary (also written to SOAK_OUT/summary.json, default runs/soak) and exits non-zero
 * when a request was lost, duplicated or failed, a report differs from its twin, or any 5xx was seen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, redisReachable, spawnApp, unpackTar, type ManagedProcess } from '@scaleot/cluster';
import { atomicWriteJson } from '@scaleot/core';
import * as zmq from 'zeromq';
import { FuzzRng, httpCases, uploadCases } from '../test/support/fuzzCases.js';

const REPO = resolve(import.meta.dirname, '..');
const N = Number(process.env.SOAK_REQUESTS ?? 100);
const TENANTS = 10;
const TIMEOUT_S = Number(process.env.SOAK_TIMEOUT_S ?? 2400);
const OUT = resolve(process.env.SOAK_OUT ?? join(REPO, 'runs/soak'));
const HTTP_FUZZ = Number(process.env.SOAK_HTTP_FUZZ ?? 1000);
const UPLOAD_FUZZ = Number(process.env.SOAK_UPLOAD_FUZZ ?? 200);
const WIRE_FUZZ = Number(process.env.SOAK_WIRE_FUZZ ?? 200);
const started = Date.now();
const say = (msg: string) => process.stderr.write(`[soak ${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);

const children = new Set<ChildProcess>();
let dir = '';
async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
const deadline = setTimeout(() => {
  say(`time limit of ${TIMEOUT_S} s reached: stopping`);
  void cleanup().then(() => process.exit(3));
}, TIMEOUT_S * 1000);
deadline.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    void cleanup().then(() => process.exit(130));
  });
}

/** Peak resident memory per role (VmHWM of each process, max over its restarts), MiB. */
const peakRss: Record<string, number> = {};
function samplePeak(role: string, pid: number | undefined): void {
  if (!pid || !existsSync(`/proc/${pid}/status`)) return;
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m) peakRss[role] = Math.max(peakRss[role] ?? 0, Number(m[1]) / 1024);
}

async function main(): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'scaleot-soak-'));
  const storage = join(dir, 'storage');
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(join(REPO, 'models/sotu-gpt2-tiny'), join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(join(REPO, 'data'), join(storage, 'data'));

  // Redis: ours, AOF with fsync on every write, a password, its own port.
  const password = `soak-${Math.random().toString(36).slice(2)}`;
  const redisPort = await freePort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  let redis: ChildProcess;
  const startRedis = async () => {
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', password, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', dir], { stdio: 'ignore' });
    children.add(redis);
    for (let i = 0; i < 100 && !(await redisReachable(redisUrl, 500, password)).ok; i++) await new Promise((r) => setTimeout(r, 100));
  };
  await startRedis();

  const tokens = Object.fromEntries(Array.from({ length: TENANTS }, (_, t) => [`tenant-${t}`, `token-${t}-${Math.random().toString(36).slice(2)}-xxxxxxxxxxxxxxxx`]));
  await atomicWriteJson(join(dir, 'tokens.json'), tokens, { mode: 0o600 });
  await atomicWriteJson(join(dir, 'config.json'), {
    stage1: { steps: 2, batchSize: 4, microBatchSize: 2, seqLen: 32, rlBatchSize: 2, rank: 16 },
    dataRoot: join(REPO, 'data'),
    maxDocuments: 6,
    tune: { steps: 2, batchSize: 2, microBatchSize: 1, seqLen: 16, warmupSteps: 0 },
    eval: { maxBlocks: 1, evalBatchSize: 2 },
    fullFineTune: false,
  });
  const [httpPort, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    SCALEOT_REDIS_URL: redisUrl,
    SCALEOT_REDIS_PASSWORD: password,
    SCALEOT_QUEUE_PREFIX: 'soak',
    SCALEOT_STORAGE_DIR: storage,
    SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort),
    SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort),
    SCALEOT_COORDINATOR_HOST: '127.0.0.1',
    // Long enough that a busy CPU does not lose a running job's lock; a killed worker's job re-runs after ~20 s.
    SCALEOT_JOB_LOCK_MS: '15000',
    SCALEOT_STALLED_INTERVAL_MS: '5000',
    SCALEOT_LOG_LEVEL: 'info',
  };
  const coordinatorEnv = {
    ...env,
    SCALEOT_HTTP_PORT: String(httpPort),
    SCALEOT_HTTP_HOST: '127.0.0.1',
    SCALEOT_API_TOKENS_FILE: join(dir, 'tokens.json'),
    SCALEOT_COORDINATOR_CONFIG: join(dir, 'config.json'),
    SCALEOT_TENANT_MAX_ACTIVE_REQUESTS: String(N),
    SCALEOT_API_RATE_PER_SECOND: '500',
    SCALEOT_API_RATE_BURST: '2000',
  };
  const start = async (app: 'coordinator' | 'worker', name: string): Promise<ManagedProcess> => {
    const p = spawnApp(app, name, app === 'coordinator' ? coordinatorEnv : { ...env, SCALEOT_METRICS_PORT: '0' });
    children.add(p.child);
    await p.waitForLog(`${app} ready`, 180_000);
    return p;
  };
  let coordinator = await start('coordinator', 'coordinator');
  const workers = [await start('worker', 'worker-1'), await start('worker', 'worker-2')];
  const http = `http://127.0.0.1:${httpPort}`;
  const api = async (path: string, tenant: string, init: RequestInit = {}) =>
    fetch(`${http}${path}`, { ...init, headers: { authorization: `Bearer ${tokens[tenant]}`, ...(typeof init.body === 'string' ? { 'content-type': 'application/json' } : {}), ...init.headers } });
  say(`coordinator and 2 workers ready; Redis ${redisUrl} (AOF); submitting ${N} requests from ${TENANTS} tenants`);

  // Requests: 2k and 2k+1 share preset and seed (different tenants).
  interface Submitted { id: string; tenant: string; twin: number; at: number; doneAt?: number; status?: string; report?: Record<string, unknown>; secondResults: number }
  const submitted: Submitted[] = [];
  for (let i = 0; i < N; i++) {
    const tenant = `tenant-${i % TENANTS}`;
    const k = Math.floor(i / 2);
    const body = { baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: [0.25, 0.5, 0.75][k % 3], beta: [0, 0.5][k % 2] }, task: 'moby', managedTuning: true, tuneHyper: { seed: k } };
    const res = await api('/v1/requests', tenant, { method: 'POST', body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`POST ${i} -> ${res.status} ${await res.text()}`);
    const view = (await res.json()) as { id: string };
    submitted.push({ id: view.id, tenant, twin: i % 2 === 0 ? i + 1 : i - 1, at: Date.now(), secondResults: 0 });
  }

  const faults: { at: number; what: string }[] = [];
  const fault = (what: string) => {
    faults.push({ at: (Date.now() - started) / 1000, what });
    say(`fault: ${what}`);
  };
  const fuzz = { http: { requests: 0, fiveXx: 0, networkErrors: 0, statuses: {} as Record<string, number> }, upload: { uploads: 0, fiveXx: 0, statuses: {} as Record<string, number>, stagingLeft: 0 }, wire: { messages: 0 } };
  let fuzzDone = false;
  let fuzzRun: Promise<void> | undefined;

  const poll = async (): Promise<number> => {
    let done = 0;
    for (let t = 0; t < TENANTS; t++) {
      const tenant = `tenant-${t}`;
      const res = await api('/v1/requests', tenant).catch(() => undefined);
      if (!res || res.status !== 200) continue;
      const list = (await res.json()) as { id: string; tenant: string; status: string; report?: Record<string, unknown>; managedTuning: boolean }[];
      for (const r of list) {
        if (r.tenant !== tenant) throw new Error(`tenant ${tenant} sees ${r.tenant}'s request ${r.id}`);
        const s = submitted.find((x) => x.id === r.id);
        if (!s) continue;
        s.status = r.status;
        if (r.status === 'done' && !s.doneAt) {
          s.doneAt = Date.now();
          s.report = r.report;
        } else if (s.doneAt && (r.status !== 'done' || JSON.stringify(r.report) !== JSON.stringify(s.report))) {
          // A done request that runs again or changes its report got a second result.
          s.secondResults++;
          s.report = r.report;
        }
      }
    }
    for (const s of submitted) if (s.doneAt) done++;
    samplePeak('coordinator', coordinator.child.pid);
    workers.forEach((w) => samplePeak('worker', w.child.pid));
    samplePeak('redis', redis.pid);
    samplePeak('soak-driver', process.pid);
    return done;
  };

  const plan = [
    { when: 0.1, act: async () => { workers[0].child.kill('SIGKILL'); await workers[0].exited; fault('kill -9 worker-1'); workers[0] = await start('worker', 'worker-1'); } },
    // The fuzz runs beside the load (not awaited here), so completion times keep being recorded.
    { when: 0.25, act: async () => { fuzzRun = runFuzz(); } },
    { when: 0.35, act: async () => { workers[1].child.kill('SIGKILL'); await workers[1].exited; fault('kill -9 worker-2'); workers[1] = await start('worker', 'worker-2'); } },
    { when: 0.5, act: async () => { coordinator.child.kill('SIGKILL'); await coordinator.exited; fault('kill -9 coordinator'); coordinator = await start('coordinator', 'coordinator'); } },
    { when: 0.7, act: async () => { redis.kill('SIGKILL'); await new Promise((r) => redis.once('exit', r)); fault('kill -9 redis'); await new Promise((r) => setTimeout(r, 1000)); await startRedis(); fault('redis restarted from its AOF'); } },
  ];

  // Fuzz against the live processes (while requests are being processed).
  async function runFuzz(): Promise<void> {
    say('fuzz: HTTP');
    const doc = await (await fetch(`${http}/openapi.json`)).json();
    const fuzzTenant = 'tenant-0';
    // DELETE would cancel real requests: the fuzz uses ids of its own requests only.
    const own: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await api('/v1/requests', fuzzTenant, { method: 'POST', body: JSON.stringify({ baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0 }, task: 'moby' }) });
      own.push(((await res.json()) as { id: string }).id);
    }
    for (const c of httpCases(doc, tokens[fuzzTenant], own, HTTP_FUZZ, 11)) {
      if (c.method === 'DELETE' && !own.some((id) => c.url.includes(id))) c.url = c.url.replace(/\/v1\/requests\/[^/?#]*/, '/v1/requests/req-nope');
      // /events streams until the request ends: its answer is read for a moment only.
      const streaming = /\/events(\?|$)/.test(c.url);
      try {
        const res = await fetch(`${http}${c.url}`, { method: c.method, headers: c.headers, body: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body, signal: AbortSignal.timeout(streaming ? 1000 : 15_000) });
        fuzz.http.statuses[res.status] = (fuzz.http.statuses[res.status] ?? 0) + 1;
        if (res.status >= 500) fuzz.http.fiveXx++;
        await res.arrayBuffer().catch((error: unknown) => {
          if (!streaming) throw error;
        });
      } catch {
        fuzz.http.networkErrors++;
      }
      fuzz.http.requests++;
    }
    say(`fuzz: uploads (waiting for an emulator and a tuned adapter of ${fuzzTenant})`);
    const created = await api('/v1/requests', fuzzTenant, { method: 'POST', body: JSON.stringify({ baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0 }, task: 'moby' }) });
    const target = ((await created.json()) as { id: string }).id;
    let adapterTar: Buffer | undefined;
    for (let i = 0; i < 600 && !adapterTar; i++) {
      const doneOne = submitted.find((s) => s.tenant === fuzzTenant && s.status === 'done');
      if (doneOne) {
        const res = await api(`/v1/requests/${doneOne.id}/adapter.tar`, fuzzTenant).catch(() => undefined);
        if (res?.status === 200) adapterTar = Buffer.from(await res.arrayBuffer());
      }
      if (!adapterTar) await new Promise((r) => setTimeout(r, 1000));
    }
    for (let i = 0; i < 600; i++) {
      const res = await api(`/v1/requests/${target}`, fuzzTenant).catch(() => undefined);
      if (res?.status === 200 && ((await res.json()) as { status: string }).status === 'emulator-ready') break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (adapterTar) {
      const files = new Map(unpackTar(adapterTar).map((f) => [f.name, f.data]));
      const cases = uploadCases({ manifest: files.get('adapter.json')!, weights: files.get('adapter.safetensors')! }, UPLOAD_FUZZ, 5);
      for (const c of cases) {
        const res = await api(`/v1/requests/${target}/adapter`, fuzzTenant, { method: 'PUT', body: c.body, headers: { 'content-type': 'application/x-tar' } }).catch(() => undefined);
        const status = res?.status ?? 0;
        if (res) await res.arrayBuffer();
        fuzz.upload.statuses[status] = (fuzz.upload.statuses[status] ?? 0) + 1;
        if (status >= 500 || status === 0) fuzz.upload.fiveXx++;
        fuzz.upload.uploads++;
      }
      const requestDir = join(storage, 'tenants', fuzzTenant, 'requests', target);
      fuzz.upload.stagingLeft = (await readdir(requestDir)).filter((n) => n.startsWith('upload-')).length;
    }
    say('fuzz: wire');
    const rng = new FuzzRng(9);
    const sockets = [new zmq.Dealer(), new zmq.Dealer()];
    sockets[0].connect(`tcp://127.0.0.1:${resultsPort}`);
    sockets[1].connect(`tcp://127.0.0.1:${paramsPort}`);
    for (let i = 0; i < WIRE_FUZZ; i++) {
      const frames = Array.from({ length: 1 + rng.int(4) }, (_, j) => (j === 0 && rng.int(2) ? Buffer.from(JSON.stringify({ v: 1, type: rng.pick(['result', 'get', 'ack']), id: `f${i}`, attempt: 1, key: { runId: 'fuzz', round: i, jobId: 'x' }, minVersion: 0, waitMs: 10 })) : rng.bytes(rng.int(512))));
      await sockets[i % 2].send(frames);
      fuzz.wire.messages++;
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const s of sockets) s.close();
    fuzzDone = true;
    say(`fuzz done: ${JSON.stringify(fuzz)}`);
  }

  let step = 0;
  let done = 0;
  while (done < N) {
    await new Promise((r) => setTimeout(r, 1000));
    done = await poll().catch(() => done);
    const failed = submitted.filter((s) => s.status === 'failed');
    if (failed.length) throw new Error(`requests failed: ${failed.map((f) => f.id).join(', ')}`);
    if (step < plan.length && done >= Math.ceil(plan[step].when * N)) await plan[step++].act();
    if (Date.now() - started > 10_000 && (Date.now() - started) % 30_000 < 1000) say(`${done}/${N} done`);
  }
  while (step < plan.length) await plan[step++].act();
  await fuzzRun;
  if (!fuzzDone) await runFuzz();
  await poll();

  // Isolation: another tenant's id is a 404.
  let isolationViolations = 0;
  for (const s of submitted.slice(0, 20)) {
    const other = `tenant-${(Number(s.tenant.split('-')[1]) + 1) % TENANTS}`;
    if ((await api(`/v1/requests/${s.id}`, other)).status !== 404) isolationViolations++;
  }
  const ids = new Set(submitted.map((s) => s.id));
  const numbers = (r?: Record<string, unknown>) => JSON.stringify(['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in'].map((k) => r?.[k]));
  const twinMismatches = submitted.filter((s, i) => submitted[s.twin] && i < s.twin && numbers(s.report) !== numbers(submitted[s.twin].report)).length;
  const perTenant = Array.from({ length: TENANTS }, (_, t) => {
    const mine = submitted.filter((s) => s.tenant === `tenant-${t}` && s.doneAt);
    const times = mine.map((s) => (s.doneAt! - s.at) / 1000);
    return { tenant: `tenant-${t}`, done: mine.length, meanSeconds: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length), maxSeconds: Math.max(...times) };
  });
  const means = perTenant.map((t) => t.meanSeconds);
  const summary = {
    requests: N,
    tenants: TENANTS,
    done: submitted.filter((s) => s.doneAt).length,
    lost: submitted.filter((s) => !s.doneAt).length,
    // Ids listed twice, or a done request that later ran again or changed its report.
    duplicated: N - ids.size + submitted.reduce((n, s) => n + s.secondResults, 0),
    twinReportMismatches: twinMismatches,
    isolationViolations,
    faults,
    fuzz,
    fiveXx: fuzz.http.fiveXx + fuzz.upload.fiveXx,
    fairness: { perTenant, maxOverMinMeanCompletion: Math.max(...means) / Math.min(...means) },
    peakRssMiB: Object.fromEntries(Object.entries(peakRss).map(([k, v]) => [k, Math.round(v)])),
    seconds: Math.round((Date.now() - started) / 1000),
  };
  await mkdir(OUT, { recursive: true });
  await writeFile(join(OUT, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  const ok = summary.lost === 0 && summary.duplicated === 0 && summary.twinReportMismatches === 0 && summary.fiveXx === 0 && isolationViolations === 0 && fuzz.http.networkErrors === 0 && fuzz.upload.stagingLeft === 0 && fuzz.http.requests >= Math.min(HTTP_FUZZ, 1000) && fuzz.upload.uploads >= Math.min(UPLOAD_FUZZ, 200);
  say(ok ? 'soak passed' : 'soak FAILED');
  for (const w of workers) w.child.kill('SIGTERM');
  coordinator.child.kill('SIGTERM');
  await Promise.all([coordinator.exited, ...workers.map((w) => w.exited)].map((p) => Promise.race([p, new Promise((r) => setTimeout(r, 20_000))])));
  process.exitCode = ok ? 0 : 1;
}

main()
  .catch((error: unknown) => {
    say(`soak FAILED: ${error instanceof Error ? error.stack : String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanup();
    clearTimeout(deadline);
  });
