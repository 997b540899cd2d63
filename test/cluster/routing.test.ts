import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterWorker, QueueJobRunner, clusterConfigFromEnv, freePort } from '@scaleot/cluster';
import { createMetrics } from '@scaleot/metrics';
import { JobRouter, parseJobRoutes, type JobPayload } from '@scaleot/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, spawnApp, stopProcess, uniquePrefix } from './helpers.js';

// Job routing as the chart configures it: the coordinator's SCALEOT_JOB_ROUTES sends each kind to its
// queue, each worker group consumes its SCALEOT_QUEUE_NAMES, and the coordinator exports
// scaleot_queue_depth for every routed queue (KEDA's signal) on its own metrics port.
const prefix = uniquePrefix('routing');
let storage: string;
const started: ClusterWorker[] = [];
let router: JobRouter;
let runner: QueueJobRunner;

const evaluate = (id: string): JobPayload<'evaluate'> => ({ tenant: 'acme', evaluationId: id, model: 'models/m', task: 'tasks/t' });
const tune = (id: string): JobPayload<'tune'> => ({ tenant: 'acme', tuneId: id, emulator: 'e', task: 't', output: 'o', hyper: {} });

async function startWorker(group: string, queues: string, concurrency = 1, delayMs = 0) {
  const config = clusterConfigFromEnv({ SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_WORKER_GROUP: group, SCALEOT_QUEUE_NAMES: queues, SCALEOT_WORKER_CONCURRENCY: String(concurrency) });
  const state = { running: 0, peak: 0 };
  const run = async (id: string) => {
    state.running++;
    state.peak = Math.max(state.peak, state.running);
    await new Promise((r) => setTimeout(r, delayMs));
    state.running--;
    return { group, id };
  };
  const worker = await ClusterWorker.start({
    config,
    queueNames: config.queueNames,
    serveMetrics: false,
    handlers: { evaluate: async (p) => run(p.evaluationId), tune: async (p) => run(p.tuneId) },
  });
  started.push(worker);
  return { worker, state };
}

beforeAll(async () => {
  storage = await mkdtemp(join(tmpdir(), 'scaleot-routing-'));
  router = new JobRouter(parseJobRoutes('tune=gpu,*=cpu-eval'), { connection: REDIS_URL, prefix });
  runner = new QueueJobRunner(router, REDIS_URL);
});

afterAll(async () => {
  await Promise.all(started.map((w) => w.close()));
  await runner.close();
  for (const q of router.queues) await q.obliterate().catch(() => undefined);
  await router.close();
  await rm(storage, { recursive: true, force: true });
});

describe('job routing across worker groups', () => {
  it('runs each kind on the group that consumes its queue', async () => {
    await startWorker('gpu', 'gpu');
    await startWorker('cpu', 'cpu-eval');
    const [t, e] = await Promise.all([runner.run<{ group: string }>('tune', tune('t1')), runner.run<{ group: string }>('evaluate', evaluate('e1'))]);
    expect(t.group).toBe('gpu');
    expect(e.group).toBe('cpu');
    expect(router.queueFor('tune').name).toBe('gpu');
    expect(router.queueFor('plugin').name).toBe('cpu-eval');
  });

  it('a worker consuming two queues runs SCALEOT_WORKER_CONCURRENCY jobs in all, not per queue', async () => {
    for (const w of started.splice(0)) await w.close();
    const { state } = await startWorker('both', 'gpu,cpu-eval', 1, 150);
    const results = await Promise.all([
      runner.run<{ group: string }>('tune', tune('t2')),
      runner.run<{ group: string }>('evaluate', evaluate('e2')),
      runner.run<{ group: string }>('tune', tune('t3')),
      runner.run<{ group: string }>('evaluate', evaluate('e3')),
    ]);
    expect(results.map((r) => r.group)).toEqual(['both', 'both', 'both', 'both']);
    expect(state.peak).toBe(1);
  });

  it('exports scaleot_queue_depth per routed queue (a metric the group at zero replicas scales on)', async () => {
    for (const w of started.splice(0)) await w.close();
    await router.add('tune', tune('waiting-1'));
    await router.add('tune', tune('waiting-2'));
    await router.add('evaluate', evaluate('waiting-3'));
    const metrics = createMetrics();
    for (const q of router.queues) metrics.trackQueue(q.queue);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/scaleot_queue_depth\{queue="gpu"\} 2/);
    expect(text).toMatch(/scaleot_queue_depth\{queue="cpu-eval"\} 1/);
  });
});

describe('coordinator process with routes and its own metrics port', () => {
  it('serves /metrics with every routed queue on SCALEOT_METRICS_PORT and none on the API port', async () => {
    const [httpPort, metricsPort, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const tokens = join(storage, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ acme: 'x'.repeat(32) }));
    const coordinator = spawnApp('coordinator', {
      SCALEOT_REDIS_URL: REDIS_URL,
      SCALEOT_QUEUE_PREFIX: prefix,
      SCALEOT_STORAGE_DIR: storage,
      SCALEOT_HTTP_PORT: String(httpPort),
      SCALEOT_HTTP_HOST: '127.0.0.1',
      SCALEOT_METRICS_PORT: String(metricsPort),
      SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort),
      SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort),
      SCALEOT_API_TOKENS_FILE: tokens,
      SCALEOT_JOB_ROUTES: 'stage1.shard=gpu,stage1.rollout=gpu,tune=gpu,*=cpu-eval',
    });
    try {
      const ready = await coordinator.waitForLog('coordinator ready', 90_000);
      expect(ready.routes).toMatchObject({ defaultQueue: 'cpu-eval', kinds: { tune: 'gpu' } });
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      for (const queue of ['gpu', 'cpu-eval', 'gpu-control']) expect(text).toMatch(new RegExp(`scaleot_queue_depth\\{queue="${queue}"`));
      expect((await fetch(`http://127.0.0.1:${httpPort}/metrics`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
    } finally {
      await stopProcess(coordinator);
    }
  });
});
