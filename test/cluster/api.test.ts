import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@scaleot/backend';
import { freePort, paramsVersion, shardResultKey, Stage1WorkerRuntime, unpackTar, writeTokenStream } from '@scaleot/cluster';
import { JobQueue } from '@scaleot/queue';
import { corpusStreams } from '@scaleot/scaleot';
import { ParameterPublisher, ResultCollector, TensorSet, createTensor } from '@scaleot/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, spawnApp, stopProcess, uniquePrefix, type SpawnedProcess } from './helpers.js';

// A running coordinator + two workers: tenant isolation on the API, OpenAPI, probes and metrics, a
// malformed job payload; and (in this process) a corrupted gradient frame caught by its checksum.
const prefix = uniquePrefix('api');
const tokens = { 'tenant-a': 'a'.repeat(32), 'tenant-b': 'b'.repeat(32) };
let storage: string;
let http: string;
let coordinator: SpawnedProcess;
const workers: SpawnedProcess[] = [];

/** The fields of a request's public view these tests read. */
interface RequestView {
  id: string;
  tenant: string;
  status: string;
}

const api = (path: string, token?: string, init: RequestInit = {}) =>
  fetch(`${http}${path}`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body && typeof init.body === 'string' ? { 'content-type': 'application/json' } : {}), ...init.headers } });

beforeAll(async () => {
  await initBackend('wasm');
  storage = await mkdtemp(join(tmpdir(), 'scaleot-cluster-api-'));
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(DATA_ROOT, join(storage, 'data'));
  await writeFile(join(storage, 'tokens.json'), JSON.stringify(tokens));
  await writeFile(join(storage, 'config.json'), JSON.stringify({ stage1: { steps: 2, batchSize: 4, microBatchSize: 2, seqLen: 32, rlBatchSize: 2, rank: 16 }, dataRoot: DATA_ROOT, maxDocuments: 6, eval: { maxBlocks: 1, evalBatchSize: 2 } }));
  const [httpPort, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort()];
  const env = { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort), SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort), SCALEOT_COORDINATOR_HOST: '127.0.0.1' };
  coordinator = spawnApp('coordinator', { ...env, SCALEOT_HTTP_PORT: String(httpPort), SCALEOT_HTTP_HOST: '127.0.0.1', SCALEOT_API_TOKENS_FILE: join(storage, 'tokens.json'), SCALEOT_COORDINATOR_CONFIG: join(storage, 'config.json') });
  for (let i = 0; i < 2; i++) workers.push(spawnApp('worker', { ...env, SCALEOT_METRICS_PORT: '0' }));
  http = `http://127.0.0.1:${httpPort}`;
  await Promise.all([coordinator.waitForLog('coordinator ready', 90_000), ...workers.map((w) => w.waitForLog('worker ready', 90_000))]);
});

afterAll(async () => {
  await Promise.all([coordinator, ...workers].filter(Boolean).map((p) => stopProcess(p)));
  for (const name of ['scaleot', 'scaleot-control']) {
    const q = new JobQueue({ name, connection: REDIS_URL, prefix });
    await q.obliterate().catch(() => undefined);
    await q.close();
  }
  await rm(storage, { recursive: true, force: true });
});

describe('coordinator API', () => {
  it('serves probes, the OpenAPI document and metrics with the queue depth (coordinator and worker)', async () => {
    expect((await api('/healthz')).status).toBe(200);
    expect((await api('/readyz')).status).toBe(200);
    const doc = (await (await api('/openapi.json')).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toContain('/v1/requests/{id}');
    const metrics = await (await api('/metrics')).text();
    expect(metrics).toMatch(/scaleot_queue_depth\{queue="scaleot"/);
    const workerUrl = String(workers[0].logs.find((r) => r.msg === 'worker ready')!.metrics);
    const workerMetrics = await (await fetch(`${workerUrl}/metrics`)).text();
    expect(workerMetrics).toContain('scaleot_queue_depth');
    expect((await fetch(`${workerUrl}/readyz`)).status).toBe(200);
  });

  it('keeps one data owner out of another\'s requests and artifacts', async () => {
    expect((await api('/v1/requests')).status).toBe(401);
    expect((await api('/v1/requests', 'not-a-token-at-all-xxxxxxxxxxxx')).status).toBe(401);
    const created = await api('/v1/requests', tokens['tenant-a'], { method: 'POST', body: JSON.stringify({ baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0.25 }, task: 'moby' }) });
    expect(created.status).toBe(201);
    const request = (await created.json()) as RequestView;
    expect(request.tenant).toBe('tenant-a');
    const bad = await api('/v1/requests', tokens['tenant-a'], { method: 'POST', body: JSON.stringify({ baseModel: '../etc', preset: { nAdapter: 4, alpha: 2, beta: 0 }, task: 'moby' }) });
    expect(bad.status).toBe(400);

    const b = tokens['tenant-b'];
    for (const [path, init] of [
      [`/v1/requests/${request.id}`, {}],
      [`/v1/requests/${request.id}/emulator`, {}],
      [`/v1/requests/${request.id}/emulator.tar`, {}],
      [`/v1/requests/${request.id}/emulator/files/emulator.json`, {}],
      [`/v1/requests/${request.id}/report`, {}],
      [`/v1/requests/${request.id}/plugin`, { method: 'POST' }],
      [`/v1/requests/${request.id}/adapter`, { method: 'PUT', body: Buffer.alloc(1024), headers: { 'content-type': 'application/x-tar' } }],
    ] as const) {
      const res = await api(path, b, init as RequestInit);
      expect([403, 404]).toContain(res.status);
    }
    expect(await (await api('/v1/requests', b)).json()).toEqual([]);

    // Status streams as server-sent events to its owner only.
    expect((await api(`/v1/requests/${request.id}/events`, b)).status).toBe(404);
    const stream = new AbortController();
    const seen: string[] = [];
    const events = (async () => {
      const res = await api(`/v1/requests/${request.id}/events`, tokens['tenant-a'], { signal: stream.signal });
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const decoder = new TextDecoder();
      let buffered = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffered += decoder.decode(chunk, { stream: true });
          const frames = buffered.split('\n\n');
          buffered = frames.pop()!;
          for (const frame of frames) {
            const data = frame.split('\n').find((l) => l.startsWith('data: '));
            if (data) seen.push(JSON.parse(data.slice(6)).status);
          }
          if (seen.includes('emulator-ready')) break;
        }
      } catch (err) {
        if (!stream.signal.aborted) throw err;
      }
    })();

    // Tenant A's emulator becomes downloadable once stage 1 and the emulator build ran on the workers.
    const deadline = Date.now() + 150_000;
    let status = request.status;
    while (status !== 'emulator-ready' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const current = (await (await api(`/v1/requests/${request.id}`, tokens['tenant-a'])).json()) as RequestView;
      status = current.status;
      expect(status).not.toBe('failed');
    }
    expect(status).toBe('emulator-ready');
    // The coordinator app places stage 1 itself (runClusterStage1): data-parallel shards for the tiny
    // model. (How budgets decide it, with real workers reporting them, is test/cluster/placement.test.ts.)
    expect(String(coordinator.logs.find((r) => String(r.msg).startsWith('stage 1: '))?.msg)).toMatch(/^stage 1: data-parallel shards \(/);
    await Promise.race([events, new Promise((r) => setTimeout(r, 10_000))]);
    stream.abort();
    expect(seen[0]).toBe(request.status);
    expect(seen).toContain('emulator-ready');
    const tar = Buffer.from(await (await api(`/v1/requests/${request.id}/emulator.tar`, tokens['tenant-a'])).arrayBuffer());
    expect(unpackTar(tar).map((f) => f.name)).toContain('emulator.json');
    expect((await api(`/v1/requests/${request.id}/emulator.tar`, b)).status).toBe(404);
  });

  it('fails a malformed job with a clear reason and keeps the workers serving', async () => {
    const queue = new JobQueue({ connection: REDIS_URL, prefix });
    try {
      // Bypasses the producer's validation, as a buggy or hostile producer would.
      const bad = await queue.queue.add('stage1.shard', { runId: 'x', round: -1, shardIndex: 3, shardCount: 2, resultAddress: 'http://nope' });
      const deadline = Date.now() + 30_000;
      while ((await bad.getState()) !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const failed = await queue.queue.getJob(bad.id!);
      expect(await failed!.getState()).toBe('failed');
      expect(failed!.failedReason).toMatch(/INVALID_JOB_PAYLOAD/);
      expect(failed!.failedReason).toMatch(/round/);
      expect(failed!.attemptsMade).toBeLessThanOrEqual(1);
      // The workers still take jobs: a small evaluation completes.
      const good = await queue.add('evaluate', { tenant: 'owner', evaluationId: 'still-serving', model: MODEL_DIR, task: 'moby', hyper: { maxBlocks: 1, evalBatchSize: 1 } });
      const until = Date.now() + 60_000;
      while (!['completed', 'failed'].includes(await good.getState()) && Date.now() < until) await new Promise((r) => setTimeout(r, 300));
      expect(await good.getState()).toBe('completed');
    } finally {
      await queue.close();
    }
  });
});

describe('gradient delivery', () => {
  it('rejects a corrupted tensor frame by its checksum and delivers the resent gradients intact', async () => {
    const streams = await corpusStreams('sotu', DATA_ROOT, MODEL_DIR, 4);
    await writeTokenStream(join(storage, 'corrupt-train.i32'), streams.train);
    const publisher = await ParameterPublisher.open();
    const collector = await ResultCollector.open();
    const runtime = (beforeSend?: (frames: Buffer[], attempt: number) => Buffer[]) => new Stage1WorkerRuntime({ storageDir: storage, sender: { beforeSend, ackTimeoutMs: 5000 } });
    const clean = runtime();
    let corruptedAttempts = 0;
    const dirty = runtime((frames, attempt) => {
      if (attempt > 1) return frames;
      corruptedAttempts++;
      const copy = frames.map((f) => Buffer.from(f));
      const last = copy[copy.length - 1];
      last[last.length - 1] ^= 0xff;
      return copy;
    });
    try {
      const d = 128;
      const rank = 8;
      const middle = [2, 3, 4, 5, 6, 7, 8, 9];
      const params = new TensorSet();
      for (const i of middle) {
        params.set(`harmonizers.${i}.ln.weight`, createTensor(new Float32Array(d).fill(1)));
        params.set(`harmonizers.${i}.ln.bias`, createTensor(new Float32Array(d)));
        params.set(`harmonizers.${i}.down.weight`, createTensor(Float32Array.from({ length: d * rank }, (_, k) => Math.sin(k + i) * 0.02), [d, rank]));
        params.set(`harmonizers.${i}.down.bias`, createTensor(new Float32Array(rank)));
        params.set(`harmonizers.${i}.up.weight`, createTensor(Float32Array.from({ length: rank * d }, (_, k) => Math.cos(k * i) * 0.01), [rank, d]));
        params.set(`harmonizers.${i}.up.bias`, createTensor(new Float32Array(d)));
      }
      const version = paramsVersion(1, 0, 0);
      const mask = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1];
      await publisher.publish(version, params, { meta: { runId: 'corrupt', round: 0, phase: 0, model: MODEL_DIR, middle, rank, eps: 1e-5, mask, tokens: 2 * 16, rows: 2, microBatchSize: 1, alignWeight: 1 } });
      const payload = (shardIndex: number) => ({ runId: 'corrupt', round: 0, shardIndex, shardCount: 2, batch: { type: 'windows' as const, dataset: join(storage, 'corrupt-train.i32'), windowIndices: [5, 99], windowLength: 17 }, paramsVersion: version, paramsAddress: publisher.address, resultAddress: collector.address });
      const sent = await dirty.shard(payload(0));
      expect(corruptedAttempts).toBe(1);
      expect(sent.attempts).toBe(2);
      await clean.shard(payload(1));
      const got = await collector.collect([shardResultKey('corrupt', version, 0), shardResultKey('corrupt', version, 1)], { timeoutMs: 10_000 });
      const [a, b] = [...got.results.values()];
      expect(a.tensors.names.length).toBeGreaterThan(0);
      expect(a.tensors.names).toEqual(b.tensors.names);
      // Same windows, same params: the resent gradients equal the clean worker's bit for bit.
      for (const name of a.tensors.names) expect(Buffer.from((a.tensors.get(name)!.data as Float32Array).buffer).equals(Buffer.from((b.tensors.get(name)!.data as Float32Array).buffer))).toBe(true);
    } finally {
      await clean.close();
      await dirty.close();
      await publisher.close();
      await collector.close();
    }
  });
});
