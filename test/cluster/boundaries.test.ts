import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@scaleot/backend';
import {
  ApiRateLimiter,
  ClusterError,
  coordinatorSettingsSchema,
  Coordinator,
  httpStatusOf,
  packTar,
  QueueJobRunner,
  readSettingsFile,
  stage1Steps,
  TenantAuth,
  type TuningRequest,
} from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { createUniformEmulator, tuneAdapter } from '@scaleot/offsite';
import { DEFAULT_JOB_OPTIONS, JobQueue, jobSchemas, privacyPresetSchema, validateJobPayload } from '@scaleot/queue';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../apps/coordinator/src/server.js';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, uniquePrefix } from './helpers.js';

// The coordinator's HTTP boundary in one process (fastify inject), over a real BullMQ queue on Redis
// with no worker attached: jobs stay queued, which is what cancellation and the contract checks need.
const prefix = uniquePrefix('bounds');
const tokens = { 'tenant-a': 'a'.repeat(32), 'tenant-b': 'b'.repeat(32), 'tenant-q': 'q'.repeat(32) };
let storage: string;
let queue: JobQueue;
let runner: QueueJobRunner;
let coordinator: Coordinator;
let app: FastifyInstance;

const valid = { baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0.25 }, task: 'moby' };

async function post(body: unknown, token = tokens['tenant-a']) {
  const res = await app.inject({ method: 'POST', url: '/v1/requests', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  return { status: res.statusCode, body: res.json() as { error?: string; field?: string; message?: string; id?: string; status?: string } };
}

/** A request as a restarted coordinator finds it on disk (the pipeline's earlier steps already ran). */
async function seedRequest(tenant: string, id: string, changes: Partial<TuningRequest>): Promise<string> {
  const dir = join(storage, 'tenants', tenant, 'requests', id);
  await mkdir(dir, { recursive: true });
  const now = new Date().toISOString();
  const request: TuningRequest = { id, tenant, ...valid, managedTuning: false, tuneHyper: {}, status: 'queued', progress: { phase: 'queued' }, createdAt: now, updatedAt: now, artifacts: {}, ...changes };
  await writeFile(join(dir, 'request.json'), JSON.stringify(request));
  return dir;
}

beforeAll(async () => {
  storage = await mkdtemp(join(tmpdir(), 'scaleot-bounds-'));
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(DATA_ROOT, join(storage, 'data'));
  queue = new JobQueue({ connection: REDIS_URL, prefix });
  runner = new QueueJobRunner(queue, REDIS_URL);
  coordinator = new Coordinator({
    storageDir: storage,
    runner,
    // Stage 1 "ran" with N_a = 4: the emulator job is queued next (and stays there: no worker).
    stage1: async (_model, outDir) => {
      await mkdir(outDir, { recursive: true });
      await writeFile(join(outDir, 'manifest.json'), JSON.stringify({ layout: { nAdapter: 4 } }));
    },
    defaultTuneHyper: { steps: 5 },
    quotas: { maxActiveRequests: 3 },
  });
  app = await buildServer({ coordinator, auth: TenantAuth.fromTokens(tokens), metrics: createMetrics(), health: async () => ({ live: true, ready: true }), rateLimit: { burst: 1000, perSecond: 1000 } });
});

afterAll(async () => {
  await app?.close();
  coordinator?.stop();
  await runner?.close();
  await queue?.obliterate().catch(() => undefined);
  await queue?.close();
  await rm(storage, { recursive: true, force: true });
});

describe('one contract per boundary', () => {
  it('rejects unknown keys, coerced types and out-of-range values at POST with 400 naming the field', async () => {
    for (const [body, field] of [
      [{ ...valid, foo: 1 }, 'foo'],
      [{ ...valid, preset: { ...valid.preset, gamma: 0.1 } }, 'preset.gamma'],
      [{ ...valid, preset: { ...valid.preset, alpha: '0.5' } }, 'preset.alpha'],
      [{ ...valid, preset: { ...valid.preset, alpha: 1 } }, 'preset.alpha'],
      [{ ...valid, preset: { ...valid.preset, beta: -0.1 } }, 'preset.beta'],
      [{ ...valid, preset: { ...valid.preset, nAdapter: 0 } }, 'preset.nAdapter'],
      [{ ...valid, tuneHyper: { steps: -1 } }, 'tuneHyper.steps'],
      [{ ...valid, tuneHyper: { foo: 3 } }, 'tuneHyper.foo'],
      [{ ...valid, managedTuning: 'yes' }, 'managedTuning'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('VALIDATION_FAILED');
      expect(res.body.field).toBe(field);
    }
  });

  it('rejects at POST with 422 what would fail later: N_a against the model and stage 1, the schedule', async () => {
    for (const [body, field] of [
      [{ ...valid, preset: { ...valid.preset, nAdapter: 12 } }, 'preset.nAdapter'],
      [{ ...valid, preset: { ...valid.preset, nAdapter: 2 } }, 'preset.nAdapter'],
      [{ ...valid, tuneHyper: { warmupSteps: 50 } }, 'tuneHyper.warmupSteps'],
      [{ ...valid, baseModel: 'no-such-model' }, 'baseModel'],
      [{ ...valid, task: 'no-such-task' }, 'task'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.field).toBe(field);
    }
    // What Coordinator.createRequest refuses for callers that skip HTTP: the same contract.
    await expect(coordinator.createRequest('tenant-a', { ...valid, foo: 1 } as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED', where: 'foo' });
  });

  it('shares the preset bounds between the API, the job payload and the settings files', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, { post?: { requestBody: { content: Record<string, { schema: { properties: Record<string, { properties?: Record<string, Record<string, unknown>>; additionalProperties?: boolean }> } }> } } }> };
    const preset = doc.paths['/v1/requests'].post!.requestBody.content['application/json'].schema.properties.preset;
    expect(preset.additionalProperties).toBe(false);
    expect(preset.properties!.alpha).toMatchObject({ minimum: 0, exclusiveMaximum: 1 });
    expect(preset.properties!.nAdapter).toMatchObject({ minimum: 1 });
    // The job payload uses the very same field schemas.
    const emulatorFields = (jobSchemas['emulator.build'].json.properties as Record<string, unknown>);
    expect(emulatorFields.alpha).toBe((privacyPresetSchema.json.properties as Record<string, unknown>).alpha);
    const job = { tenant: 't', emulatorId: 'e', model: 'm', stage1: 's', output: 'o', adapterBlocks: 4, alpha: 0.5, beta: 0 };
    expect(() => validateJobPayload('emulator.build', job)).not.toThrow();
    expect(() => validateJobPayload('emulator.build', { ...job, alpha: 1 })).toThrow(/alpha/);
    expect(() => validateJobPayload('emulator.build', { ...job, adapterBlocks: 0 })).toThrow(/adapterBlocks/);
    expect(() => validateJobPayload('tune', { tenant: 't', tuneId: 'x', emulator: 'e', task: 'moby', output: 'o', hyper: { stpes: 10 } })).toThrow(/stpes/);
    // Settings file: a misspelt hyper-parameter is an error naming it, not silently dropped.
    const file = join(storage, 'settings.json');
    await writeFile(file, JSON.stringify({ tune: { stpes: 10 } }));
    expect(() => readSettingsFile(coordinatorSettingsSchema, file, 'SCALEOT_COORDINATOR_CONFIG')).toThrow(/SCALEOT_COORDINATOR_CONFIG.*tune\.stpes is not a known field/);
    await writeFile(file, JSON.stringify({ stage1: { steps: 0 } }));
    expect(() => readSettingsFile(coordinatorSettingsSchema, file, 'SCALEOT_COORDINATOR_CONFIG')).toThrow(/stage1\.steps/);
    // Progress during stage 1 reports the run's total, not the current step, when the file names none.
    expect(stage1Steps({})).toBe(300);
    expect(stage1Steps({ stage1: { steps: 8 } })).toBe(8);
  });
});

describe('error hygiene', () => {
  it('maps every API error code through one table and labels 413/415 honestly', async () => {
    expect(httpStatusOf('VALIDATION_FAILED')).toBe(400);
    expect(httpStatusOf('ADAPTER_PROVENANCE_MISMATCH')).toBe(409);
    expect(httpStatusOf('SOMETHING_ELSE')).toBe(500);
    const big = await app.inject({ method: 'POST', url: '/v1/requests', headers: { authorization: `Bearer ${tokens['tenant-a']}`, 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(2 << 20) }) });
    expect(big.statusCode).toBe(413);
    expect(big.json().error).toBe('PAYLOAD_TOO_LARGE');
    const text = await app.inject({ method: 'POST', url: '/v1/requests', headers: { authorization: `Bearer ${tokens['tenant-a']}`, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error).toBe('UNSUPPORTED_MEDIA_TYPE');
    const broken = await app.inject({ method: 'POST', url: '/v1/requests', headers: { authorization: `Bearer ${tokens['tenant-a']}`, 'content-type': 'application/json' }, payload: '{"baseModel": SECRET-INPUT' });
    expect(broken.statusCode).toBe(400);
    expect(broken.body).not.toContain('SECRET');
  });

  it('never returns server paths or echoes uploaded bytes, and removes upload staging on every outcome', async () => {
    const id = 'req-upload-hygiene';
    const dir = await seedRequest('tenant-a', id, { status: 'emulator-ready', artifacts: { emulator: join(storage, 'nowhere') } });
    const put = (body: Buffer) => app.inject({ method: 'PUT', url: `/v1/requests/${id}/adapter`, headers: { authorization: `Bearer ${tokens['tenant-a']}`, 'content-type': 'application/x-tar' }, payload: body });
    const marker = 'ZZ-ECHO-MARKER-ZZ';
    const bad = [
      Buffer.from(marker.repeat(40)),
      packTar([{ name: 'adapter.json', data: Buffer.from(`{"format":"${marker}"}`) }]),
      packTar([{ name: '../escape.json', data: Buffer.from('{}') }]),
      packTar([{ name: 'adapter.json', data: Buffer.from('{}') }, { name: 'x/adapter.json', data: Buffer.from('{}') }]),
    ];
    for (const body of bad) {
      const res = await put(body);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('BAD_UPLOAD');
      expect(res.body).not.toContain(storage);
      expect(res.body).not.toContain(marker);
    }
    expect(existsSync(join(storage, 'escape.json'))).toBe(false);
    expect((await readdir(dir)).filter((n) => n.startsWith('upload-'))).toEqual([]);
  });
});

describe('adapter provenance and idempotent plug-in', () => {
  it('accepts an adapter tuned on the request\'s emulator and refuses one tuned on another with 409', async () => {
    await initBackend('wasm');
    const work = join(storage, 'work');
    const [emuA, emuB] = [join(work, 'emu-a'), join(work, 'emu-b')];
    await createUniformEmulator({ modelDir: MODEL_DIR, outDir: emuA, adapter: { nAdapter: 4 } });
    await createUniformEmulator({ modelDir: MODEL_DIR, outDir: emuB, adapter: { nAdapter: 4 } });
    const adapterDir = join(work, 'adapter-a');
    await tuneAdapter({ emulatorDir: emuA, task: 'moby', dataRoot: DATA_ROOT, outDir: adapterDir, hyper: { steps: 1, batchSize: 1, microBatchSize: 1, seqLen: 16, warmupSteps: 0 } });
    const tar = packTar(await Promise.all((await readdir(adapterDir)).map(async (name) => ({ name, data: await readFile(join(adapterDir, name)) }))));
    const put = (id: string) => app.inject({ method: 'PUT', url: `/v1/requests/${id}/adapter`, headers: { authorization: `Bearer ${tokens['tenant-b']}`, 'content-type': 'application/x-tar' }, payload: tar });
    await seedRequest('tenant-b', 'req-on-a', { status: 'emulator-ready', artifacts: { emulator: emuA } });
    await seedRequest('tenant-b', 'req-on-b', { status: 'emulator-ready', artifacts: { emulator: emuB } });
    const wrong = await put('req-on-b');
    expect(wrong.statusCode).toBe(409);
    expect(wrong.json().error).toBe('ADAPTER_PROVENANCE_MISMATCH');
    expect(existsSync(join(storage, 'tenants/tenant-b/requests/req-on-b/adapter'))).toBe(false);
    const right = await put('req-on-a');
    expect(right.statusCode).toBe(200);
    expect(right.json().status).toBe('adapter-ready');
  }, 240_000);

  it('does not run plug-in again on a done request', async () => {
    const report = { task: 'moby', metric: 'ppl', higherIsBetter: false, full_zero_shot: 1, emulator_zero_shot: 2, emulator_fine_tuned: 3, plug_in: 4, full_fine_tuned: null };
    const dir = await seedRequest('tenant-b', 'req-done', { status: 'done', report, artifacts: { emulator: 'e', adapter: 'a', report: 'r' } });
    const before = await queue.queue.getJobCounts('waiting', 'active', 'prioritized');
    for (let i = 0; i < 2; i++) {
      const res = await app.inject({ method: 'POST', url: '/v1/requests/req-done/plugin', headers: { authorization: `Bearer ${tokens['tenant-b']}` } });
      expect(res.statusCode).toBe(200);
      expect(res.json().status).toBe('done');
    }
    await coordinator.idle();
    expect(JSON.parse(await readFile(join(dir, 'request.json'), 'utf8')).status).toBe('done');
    expect(await queue.queue.getJobCounts('waiting', 'active', 'prioritized')).toEqual(before);
  });
});

describe('lifecycle', () => {
  it('DELETE cancels a request: its queued job leaves Redis, its storage is freed, other tenants get 404', async () => {
    const created = await post(valid, tokens['tenant-q']);
    expect(created.status).toBe(201);
    const id = created.body.id!;
    const deadline = Date.now() + 20_000;
    let jobs: { data: { emulatorId?: string } }[] = [];
    while (Date.now() < deadline) {
      jobs = (await queue.queue.getJobs(['waiting', 'prioritized'])).filter((j) => j.data.emulatorId === `${id}-emulator`);
      if (jobs.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(jobs).toHaveLength(1);
    const other = await app.inject({ method: 'DELETE', url: `/v1/requests/${id}`, headers: { authorization: `Bearer ${tokens['tenant-a']}` } });
    expect(other.statusCode).toBe(404);
    const res = await app.inject({ method: 'DELETE', url: `/v1/requests/${id}`, headers: { authorization: `Bearer ${tokens['tenant-q']}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'cancelled', previousStatus: 'building-emulator', removedJobs: 1 });
    expect((await queue.queue.getJobs(['waiting', 'prioritized'])).filter((j) => j.data.emulatorId === `${id}-emulator`)).toHaveLength(0);
    expect(existsSync(join(storage, 'tenants', 'tenant-q', 'requests', id))).toBe(false);
    expect((await app.inject({ method: 'GET', url: `/v1/requests/${id}`, headers: { authorization: `Bearer ${tokens['tenant-q']}` } })).statusCode).toBe(404);
  });

  it('enforces the per-tenant quota of unfinished requests (429) and frees it on cancel', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post(valid, tokens['tenant-q']);
      expect(res.status).toBe(201);
      ids.push(res.body.id!);
    }
    const over = await post(valid, tokens['tenant-q']);
    expect(over.status).toBe(429);
    expect(over.body.error).toBe('QUOTA_EXCEEDED');
    await coordinator.cancelRequest('tenant-q', ids[0]);
    expect((await post(valid, tokens['tenant-q'])).status).toBe(201);
    for (const r of await coordinator.listRequests('tenant-q')) await coordinator.cancelRequest('tenant-q', r.id);
  });

  it('rate-limits the API per tenant with 429 and Retry-After', async () => {
    const limited = await buildServer({ coordinator, auth: TenantAuth.fromTokens(tokens), metrics: createMetrics(), health: async () => ({ live: true, ready: true }), rateLimit: { burst: 3, perSecond: 0.5 } });
    const codes: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await limited.inject({ method: 'GET', url: '/v1/requests', headers: { authorization: `Bearer ${tokens['tenant-a']}` } });
      codes.push(res.statusCode);
      if (res.statusCode === 429) retryAfter = String(res.headers['retry-after']);
    }
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another tenant has its own bucket.
    expect((await limited.inject({ method: 'GET', url: '/v1/requests', headers: { authorization: `Bearer ${tokens['tenant-b']}` } })).statusCode).toBe(200);
    await limited.close();
    const bounded = new ApiRateLimiter({ maxKeys: 10 });
    for (let i = 0; i < 100; i++) bounded.take(`k${i}`);
    expect(bounded.size).toBe(10);
  });

  it('deletes finished requests after the retention period and keeps unfinished ones', async () => {
    const old = new Date(Date.now() - 10 * 24 * 3600_000).toISOString();
    await seedRequest('tenant-r', 'req-old-done', { status: 'done', updatedAt: old });
    await seedRequest('tenant-r', 'req-old-running', { status: 'tuning', updatedAt: old });
    await seedRequest('tenant-r', 'req-new-done', { status: 'done' });
    const removed = await coordinator.sweepRetention();
    expect(removed).toContain('req-old-done');
    const left = (await coordinator.listRequests('tenant-r')).map((r) => r.id).sort();
    expect(left).toEqual(['req-new-done', 'req-old-running']);
  });

  it('sets BullMQ removeOnComplete/removeOnFail so finished jobs do not pile up in Redis', () => {
    expect(DEFAULT_JOB_OPTIONS.removeOnComplete).toBeTruthy();
    expect(DEFAULT_JOB_OPTIONS.removeOnFail).toBeTruthy();
    expect(new ClusterError('X', 'y')).toBeInstanceOf(Error);
  });
});
