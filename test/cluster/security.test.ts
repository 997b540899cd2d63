import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterConfigFromEnv, coordinatorStartup, freePort, redisConnectionOf, redisReachable } from '@scaleot/cluster';
import { atomicWriteJson } from '@scaleot/core';
import { JobQueue, JobWorker } from '@scaleot/queue';
import { generateCurveKeyPair, ParameterSubscriber, ResultSender, TensorSet } from '@scaleot/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, spawnApp, stopProcess, uniquePrefix, type SpawnedProcess } from './helpers.js';

// Redis with a password (a redis-server this test starts with requirepass on its own port) and CURVE
// with an allow-list of worker keys, through the coordinator app.
const password = `pw-${Math.random().toString(36).slice(2)}`;
let redis: ChildProcess;
let redisPort: number;
let dir: string;

async function startRedis(port: number, cwd: string): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', cwd], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await redisReachable(`redis://127.0.0.1:${port}`, 500, password)).ok) return proc;
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server on ${port} did not start`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaleot-security-'));
  redisPort = await freePort();
  redis = await startRedis(redisPort, dir);
});

afterAll(async () => {
  redis?.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('Redis with a password', () => {
  it('refuses clients without the password and runs jobs with it (SCALEOT_REDIS_PASSWORD)', async () => {
    const url = `redis://127.0.0.1:${redisPort}`;
    const anonymous = await redisReachable(url, 1000);
    expect(anonymous.ok).toBe(false);
    expect(anonymous.reason).toMatch(/NOAUTH|Authentication required/i);
    const connection = redisConnectionOf(clusterConfigFromEnv({ SCALEOT_REDIS_URL: url, SCALEOT_REDIS_PASSWORD: password }));
    const prefix = uniquePrefix('authq');
    const queue = new JobQueue({ connection, prefix });
    const worker = new JobWorker({ queue: queue.name, prefix, connection, handlers: { evaluate: async (payload) => ({ seen: payload.evaluationId }) } });
    try {
      const job = await queue.add('evaluate', { tenant: 't', evaluationId: 'with-password', model: 'm', task: 'moby' });
      const deadline = Date.now() + 20_000;
      while ((await job.getState()) !== 'completed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await job.getState()).toBe('completed');
      expect((await queue.queue.getJob(job.id!))?.returnvalue).toEqual({ seen: 'with-password' });
    } finally {
      await worker.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
    }
    // The coordinator's startup check names the wrong password as one line.
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ t: 'x'.repeat(32) }));
    const wrong = await coordinatorStartup({ SCALEOT_REDIS_URL: url, SCALEOT_REDIS_PASSWORD: 'nope', SCALEOT_STORAGE_DIR: dir, SCALEOT_API_TOKENS_FILE: tokens, SCALEOT_HTTP_PORT: '0', SCALEOT_ZMQ_PARAMS_PORT: '0', SCALEOT_ZMQ_RESULTS_PORT: '0' });
    expect(wrong.ok).toBe(false);
    expect(!wrong.ok && wrong.problems.join('\n')).toMatch(/^SCALEOT_REDIS_URL: no Redis answers at .*(WRONGPASS|invalid password)/im);
  });
});

describe('CURVE allow-list through the coordinator app', () => {
  let coordinator: SpawnedProcess;
  let params: string;
  let results: string;
  const server = generateCurveKeyPair();
  const worker = generateCurveKeyPair();

  beforeAll(async () => {
    const storage = join(dir, 'storage');
    await mkdir(join(storage, 'models'), { recursive: true });
    await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
    await symlink(DATA_ROOT, join(storage, 'data'));
    await writeFile(join(dir, 'tokens.json'), JSON.stringify({ t: 'x'.repeat(32) }));
    await writeFile(join(dir, 'workers.json'), JSON.stringify([worker.publicKey]));
    const [http, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort()];
    coordinator = spawnApp('coordinator', {
      SCALEOT_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      SCALEOT_REDIS_PASSWORD: password,
      SCALEOT_QUEUE_PREFIX: uniquePrefix('curveapp'),
      SCALEOT_STORAGE_DIR: storage,
      SCALEOT_API_TOKENS_FILE: join(dir, 'tokens.json'),
      SCALEOT_HTTP_PORT: String(http),
      SCALEOT_HTTP_HOST: '127.0.0.1',
      SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort),
      SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort),
      SCALEOT_CURVE_SERVER_PUBLIC_KEY: server.publicKey,
      SCALEOT_CURVE_SERVER_SECRET_KEY: server.secretKey,
      // What the chart sets from its CURVE Secret (the file form is checked below).
      SCALEOT_CURVE_CLIENT_PUBLIC_KEYS: worker.publicKey,
    });
    await coordinator.waitForLog('coordinator ready', 90_000);
    params = `tcp://127.0.0.1:${paramsPort}`;
    results = `tcp://127.0.0.1:${resultsPort}`;
    // Ready over the password-protected Redis.
    expect((await fetch(`http://127.0.0.1:${http}/readyz`)).status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    if (coordinator) await stopProcess(coordinator);
  });

  it('takes the allow-list from a keys file, inline, or both (union); a malformed key is one startup line', async () => {
    const extra = generateCurveKeyPair().publicKey;
    const env = {
      SCALEOT_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      SCALEOT_REDIS_PASSWORD: password,
      SCALEOT_STORAGE_DIR: join(dir, 'storage'),
      SCALEOT_API_TOKENS_FILE: join(dir, 'tokens.json'),
      SCALEOT_HTTP_PORT: '0',
      SCALEOT_ZMQ_PARAMS_PORT: '0',
      SCALEOT_ZMQ_RESULTS_PORT: '0',
      SCALEOT_CURVE_SERVER_PUBLIC_KEY: server.publicKey,
      SCALEOT_CURVE_SERVER_SECRET_KEY: server.secretKey,
    };
    const both = await coordinatorStartup({ ...env, SCALEOT_CURVE_CLIENT_KEYS_FILE: join(dir, 'workers.json'), SCALEOT_CURVE_CLIENT_PUBLIC_KEYS: `${extra}, ${worker.publicKey}` });
    expect(both.ok && [...(both.value.curveClientKeys ?? [])].sort()).toEqual([worker.publicKey, extra].sort());
    const bad = await coordinatorStartup({ ...env, SCALEOT_CURVE_CLIENT_PUBLIC_KEYS: 'not-a-key' });
    expect(!bad.ok && bad.problems).toEqual(['SCALEOT_CURVE_CLIENT_PUBLIC_KEYS must list 40-character Z85 CURVE public keys, comma-separated']);
  });

  it('takes a result from an allowed worker key; a client without one cannot push and receives nothing', async () => {
    const grads = new TensorSet().add('g', new Float32Array(16).fill(2));
    const allowed = new ResultSender({ address: results, curve: { serverPublicKey: server.publicKey, ...worker } });
    const rogueKeys = generateCurveKeyPair();
    const rogue = new ResultSender({ address: results, curve: { serverPublicKey: server.publicKey, ...rogueKeys }, attempts: 2, ackTimeoutMs: 700 });
    const rogueSubscriber = new ParameterSubscriber({ address: params, curve: { serverPublicKey: server.publicKey, ...rogueKeys } });
    try {
      expect((await allowed.send({ runId: 'app', round: 0, jobId: 'ok' }, grads)).attempts).toBe(1);
      await expect(rogue.send({ runId: 'app', round: 0, jobId: 'rogue' }, grads)).rejects.toMatchObject({ code: 'TIMEOUT' });
      await expect(rogueSubscriber.fetch(0, { timeoutMs: 1500 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    } finally {
      await allowed.close();
      await rogue.close();
      await rogueSubscriber.close();
    }
  });
});

describe('token files', () => {
  it('writes secrets with mode 0600 from their creation (atomicWriteJson { mode }, used for the demo\'s api-tokens.json)', async () => {
    const file = join(dir, 'api-tokens.json');
    await atomicWriteJson(file, { t: 'secret' }, { mode: 0o600 });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
