import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { initBackend } from '@scaleot/backend';
import { Coordinator, QueueJobRunner, TenantAuth, type TuningRequest } from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { createUniformEmulator, tuneAdapter } from '@scaleot/offsite';
import { JobQueue } from '@scaleot/queue';
import { encodeTensorSet, ParameterPublisher, ParameterSubscriber, ResultCollector, ResultSender, TensorSet } from '@scaleot/transport';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { buildServer } from '../../apps/coordinator/src/server.js';
import { FuzzRng, httpCases, tarOf, uploadCases } from '../support/fuzzCases.js';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, uniquePrefix } from './helpers.js';

// Bad input at every boundary of the coordinator: >= 1000 HTTP requests generated from /openapi.json
// and mutated, >= 200 malformed adapter uploads, >= 200 garbled ZeroMQ messages. Typed 4xx answers,
// never a 5xx, nothing written outside the request's directory, and everything still serves afterwards.
process.env.SCALEOT_LOG_LEVEL ??= 'silent';
const prefix = uniquePrefix('fuzz');
const token = 'f'.repeat(32);
const UPLOAD_LIMIT = 16 << 20;
let storage: string;
let queue: JobQueue;
let runner: QueueJobRunner;
let coordinator: Coordinator;
let app: FastifyInstance;

async function seed(id: string, changes: Partial<TuningRequest>): Promise<void> {
  const dir = join(storage, 'tenants', 'fuzzer', 'requests', id);
  await mkdir(dir, { recursive: true });
  const now = new Date().toISOString();
  await writeFile(join(dir, 'request.json'), JSON.stringify({ id, tenant: 'fuzzer', baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0 }, task: 'moby', managedTuning: false, tuneHyper: {}, status: 'queued', progress: { phase: 'queued' }, createdAt: now, updatedAt: now, artifacts: {}, ...changes }));
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.push(relative(storage, path));
    }
  };
  await walk(dir);
  return out.sort();
}

beforeAll(async () => {
  storage = await mkdtemp(join(tmpdir(), 'scaleot-fuzz-'));
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(DATA_ROOT, join(storage, 'data'));
  queue = new JobQueue({ connection: REDIS_URL, prefix });
  runner = new QueueJobRunner(queue, REDIS_URL);
  coordinator = new Coordinator({
    storageDir: storage,
    runner,
    stage1: async (_model, outDir) => {
      await mkdir(outDir, { recursive: true });
      await writeFile(join(outDir, 'manifest.json'), JSON.stringify({ layout: { nAdapter: 4 } }));
    },
    quotas: { maxActiveRequests: 100_000 },
  });
  app = await buildServer({ coordinator, auth: TenantAuth.fromTokens({ fuzzer: token }), metrics: createMetrics(), health: async () => ({ live: true, ready: true }), rateLimit: { burst: 1e9, perSecond: 1e9 }, uploadLimitBytes: UPLOAD_LIMIT });
});

afterAll(async () => {
  await app?.close();
  coordinator?.stop();
  await runner?.close();
  await queue?.obliterate().catch(() => undefined);
  await queue?.close();
  await rm(storage, { recursive: true, force: true });
});

describe('HTTP fuzz', () => {
  it('answers >= 1000 generated and mutated requests without a 5xx and keeps serving', async () => {
    await seed('req-fuzz-a', { status: 'emulator-ready' });
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const cases = httpCases(doc, token, ['req-fuzz-a'], 1200);
    const byStatus = new Map<number, number>();
    const fiveXx: string[] = [];
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    for (const c of cases) {
      const res = await app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, payload: c.body });
      byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode >= 500) fiveXx.push(`${c.method} ${c.url.slice(0, 80)} (${c.label}) -> ${res.statusCode} ${res.body.slice(0, 120)}`);
      expect(res.body).not.toContain(storage);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
    expect(cases.length).toBeGreaterThanOrEqual(1000);
    expect(fiveXx).toEqual([]);
    // Every kind of answer was seen: the fuzz reached past validation too.
    expect([...byStatus.keys()].filter((s) => s >= 200 && s < 300).length).toBeGreaterThan(0);
    expect(byStatus.get(400)).toBeGreaterThan(0);
    expect(byStatus.get(413)).toBeGreaterThan(0);
    console.log(`http fuzz: ${cases.length} requests, statuses ${JSON.stringify(Object.fromEntries(byStatus))}, rss ${(rssBefore / 2 ** 20).toFixed(0)} -> peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB`);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const fresh = await app.inject({ method: 'POST', url: '/v1/requests', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0 }, task: 'moby' }) });
    expect(fresh.statusCode).toBe(201);
  }, 300_000);
});

describe('upload fuzz', () => {
  it('refuses >= 200 malformed adapter uploads with typed 4xx, writes nothing outside the request and leaves no staging', async () => {
    await initBackend('wasm');
    const emulator = join(storage, 'work', 'emulator');
    await createUniformEmulator({ modelDir: MODEL_DIR, outDir: emulator, adapter: { nAdapter: 4 } });
    const adapterDir = join(storage, 'work', 'adapter');
    await tuneAdapter({ emulatorDir: emulator, task: 'moby', dataRoot: DATA_ROOT, outDir: adapterDir, hyper: { steps: 1, batchSize: 1, microBatchSize: 1, seqLen: 16, warmupSteps: 0 } });
    const valid = { manifest: await readFile(join(adapterDir, 'adapter.json')), weights: await readFile(join(adapterDir, 'adapter.safetensors')) };
    await seed('req-upload', { status: 'emulator-ready', artifacts: { emulator } });
    const before = (await filesUnder(storage)).filter((f) => !f.startsWith('tenants/fuzzer/requests/req-upload/'));
    const cases = uploadCases(valid, 240);
    cases.push({ label: 'oversized tar', body: tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'pad.bin', data: Buffer.alloc(UPLOAD_LIMIT + 1) }]) });
    const outcomes = new Map<string, number>();
    const unexpected: string[] = [];
    for (const c of cases) {
      const res = await app.inject({ method: 'PUT', url: '/v1/requests/req-upload/adapter', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, payload: c.body });
      const key = `${res.statusCode} ${res.statusCode < 300 ? 'OK' : res.json().error}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      // A flipped byte inside the weights' float data is still a valid adapter: 200 is right for it.
      const fine = [400, 409, 413, 415].includes(res.statusCode) || (res.statusCode === 200 && c.label === 'tar with a flipped byte');
      if (!fine) unexpected.push(`${c.label} -> ${res.statusCode} ${res.body.slice(0, 160)}`);
      expect(res.body).not.toContain(storage);
    }
    console.log(`upload fuzz: ${cases.length} uploads, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expect(cases.length).toBeGreaterThanOrEqual(200);
    expect(unexpected).toEqual([]);
    expect(outcomes.get('409 ADAPTER_PROVENANCE_MISMATCH')).toBeGreaterThan(0);
    expect(outcomes.get('413 PAYLOAD_TOO_LARGE')).toBe(1);
    const after = (await filesUnder(storage)).filter((f) => !f.startsWith('tenants/fuzzer/requests/req-upload/'));
    expect(after).toEqual(before);
    const left = await readdir(join(storage, 'tenants', 'fuzzer', 'requests', 'req-upload'));
    expect(left.filter((n) => n.startsWith('upload-'))).toEqual([]);
    expect(existsSync('/tmp/adapter.json') && (await readFile('/tmp/adapter.json')).equals(valid.manifest)).toBe(false);
  }, 300_000);
});

describe('wire fuzz', () => {
  it('survives >= 200 garbled ZeroMQ messages on the result and parameter sockets and still delivers', async () => {
    const collector = await ResultCollector.open();
    const publisher = await ParameterPublisher.open();
    const rng = new FuzzRng(3);
    const good = new TensorSet().add('g', new Float32Array(256).fill(0.5));
    const frames = encodeTensorSet(good);
    const envelope = (extra: object) => Buffer.from(JSON.stringify({ v: 1, type: 'result', id: `x${rng.int(1e6)}`, attempt: 1, key: { runId: 'fuzz', round: 0, jobId: `garbage-${rng.int(1e6)}` }, ...extra }));
    const garbles: (() => Buffer[])[] = [
      () => [rng.bytes(rng.int(200))],
      () => Array.from({ length: 1 + rng.int(8) }, () => rng.bytes(rng.int(300))),
      () => [envelope({}), ...frames.map((f) => f.subarray(0, rng.int(f.length)))],
      () => [envelope({}), ...frames.map((f) => {
        const copy = Buffer.from(f);
        copy[rng.int(copy.length)] ^= 0xff;
        return copy;
      })],
      () => [envelope({ v: 2 }), ...frames],
      () => [Buffer.from('{"v":1,"type":"result"'), ...frames],
      () => [Buffer.from(JSON.stringify({ v: 1, type: 'get', id: 'g', minVersion: -5, waitMs: 1e12 }))],
      () => [Buffer.from(JSON.stringify({ v: 1, type: 'get', id: 'g', minVersion: 'x' }))],
      () => [Buffer.alloc(70 * 1024, 0x7b)],
      () => [envelope({ key: { runId: 5, round: 'x' } }), ...frames],
      () => [],
    ];
    const sockets = [new zmq.Dealer(), new zmq.Dealer()];
    sockets[0].connect(collector.address);
    sockets[1].connect(publisher.address);
    let sent = 0;
    try {
      for (let i = 0; i < 240; i++) {
        const msg = garbles[i % garbles.length]();
        if (msg.length === 0) continue;
        await sockets[i % 2].send(msg);
        sent++;
      }
      // Drain whatever the servers answered (nacks, errors) so nothing backs up.
      await new Promise((r) => setTimeout(r, 500));
      expect(sent).toBeGreaterThanOrEqual(200);
      const sender = new ResultSender({ address: collector.address });
      const key = { runId: 'fuzz', round: 0, jobId: 'valid-after-garbage' };
      expect((await sender.send(key, good)).attempts).toBe(1);
      expect(collector.take(key)?.tensors.require('g').data.length).toBe(256);
      await sender.close();
      await publisher.publish(3, good);
      const subscriber = new ParameterSubscriber({ address: publisher.address });
      expect((await subscriber.fetch(3, { timeoutMs: 10_000 })).version).toBe(3);
      await subscriber.close();
      console.log(`wire fuzz: ${sent} garbled messages, then a valid result and a parameter fetch`);
    } finally {
      for (const s of sockets) s.close();
      await collector.close();
      await publisher.close();
    }
  }, 120_000);
});
