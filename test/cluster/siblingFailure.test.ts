import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@scaleot/backend';
import { ClusterWorker, clusterConfigFromEnv, Coordinator, LocalJobRunner, QueueJobRunner, type TuningRequest } from '@scaleot/cluster';
import { createUniformEmulator, tuneAdapter } from '@scaleot/offsite';
import { JobQueue, type JobHandlers } from '@scaleot/queue';
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, uniquePrefix, until } from './helpers.js';

// When one job of a request fails for good, the coordinator stops the request's other jobs the way
// DELETE does: queued ones are removed, running ones signalled, and a running sibling's compute thread
// is terminated within 5 s. Real Redis, the real coordinator job graph, two real workers (compute threads).
process.env.SCALEOT_LOG_LEVEL ??= 'silent';
const TENANT = 'owner';
const ID = 'req-sibling';
let storage: string;
let adapterDir: string;

beforeAll(async () => {
  storage = await mkdtemp(join(tmpdir(), 'scaleot-sibling-'));
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(DATA_ROOT, join(storage, 'data'));
  await initBackend('wasm');
  const emulator = join(storage, 'work', 'emulator');
  await createUniformEmulator({ modelDir: MODEL_DIR, outDir: emulator, adapter: { nAdapter: 4 } });
  adapterDir = join(storage, 'work', 'adapter');
  await tuneAdapter({ emulatorDir: emulator, task: 'moby', dataRoot: DATA_ROOT, outDir: adapterDir, hyper: { steps: 1, batchSize: 1, microBatchSize: 1, seqLen: 16, warmupSteps: 0 } });
});

afterAll(async () => {
  await rm(storage, { recursive: true, force: true });
});

/** A request whose adapter is tuned and whose emulator was lost from storage (an empty directory). */
async function seedRequest(): Promise<void> {
  const dir = join(storage, 'tenants', TENANT, 'requests', ID);
  await mkdir(join(dir, 'emulator'), { recursive: true });
  const now = new Date().toISOString();
  const request: TuningRequest = {
    id: ID,
    tenant: TENANT,
    baseModel: 'sotu-gpt2-tiny',
    preset: { nAdapter: 4, alpha: 0.5, beta: 0 },
    task: 'moby',
    managedTuning: false,
    tuneHyper: {},
    status: 'adapter-ready',
    progress: { phase: 'adapter-ready' },
    createdAt: now,
    updatedAt: now,
    artifacts: { emulator: join(dir, 'emulator'), adapter: adapterDir },
  };
  await writeFile(join(dir, 'request.json'), JSON.stringify(request));
}

const evaluationOf = (job: Job) => (job.data as { evaluationId?: string }).evaluationId;

describe('a sibling job failing for good (real queue, two in-process workers)', () => {
  it("stops the request's running evaluation within 5 s, removes its queued ones and marks the request failed with the cause", async () => {
    const prefix = uniquePrefix('sibling');
    const env = { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0' };
    const queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    const runner = new QueueJobRunner(queue, REDIS_URL);
    // Whole-Moby-Dick evaluations: minutes of compute each if nothing stops them.
    const coordinator = new Coordinator({
      storageDir: storage,
      runner,
      stage1: () => Promise.reject(new Error('stage 1 is not part of this test')),
      evalHyper: { maxBlocks: 10_000, evalBatchSize: 2 },
      retentionMs: 0,
    });
    const first = await ClusterWorker.start({ config: clusterConfigFromEnv(env), serveMetrics: false });
    let second: ClusterWorker | undefined;
    try {
      await seedRequest();
      await coordinator.requestPlugin(TENANT, ID);
      // The plug-in job runs on the first worker, then the five evaluations are queued; the first worker
      // takes the first of them (the base model's zero-shot evaluation, valid and long).
      const long = await until(
        'the full zero-shot evaluation to be computing',
        async () => {
          const [active] = await queue.queue.getJobs(['active']);
          return active && evaluationOf(active) === `${ID}-full-zero-shot` && first.compute.busy ? active : undefined;
        },
        90_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      // Only now a second worker joins: it takes the next evaluation, of the lost emulator, which fails for good.
      second = await ClusterWorker.start({ config: clusterConfigFromEnv(env), serveMetrics: false });
      const failing = await until(
        'an emulator evaluation to fail',
        async () => (await queue.queue.getJobs(['failed'])).find((j) => evaluationOf(j)?.startsWith(`${ID}-emulator-`)),
        60_000,
        50,
      );
      const t0 = failing.finishedOn!;
      expect(failing.failedReason).toMatch(/INVALID_TOKENIZER/);
      expect(await long.getState()).not.toBe('completed'); // the premise: the sibling was still computing

      // The sibling's compute stops within 5 s of the failure; nothing of the request is left queued or running.
      const stopped = await until('the running sibling to fail', async () => ((await long.getState()) === 'failed' ? Date.now() : undefined), 5000, 50);
      const left = await until(
        'no job of the request queued or running',
        async () => {
          const open = (await queue.queue.getJobs(['active', 'waiting', 'prioritized', 'delayed'])).filter((j) => evaluationOf(j)?.startsWith(ID));
          return open.length === 0 && !first.compute.busy && !second!.compute.busy ? Date.now() : undefined;
        },
        5000,
        50,
      );
      console.log(`sibling failure: running sibling stopped ${stopped - t0} ms after the failure, nothing of the request left after ${left - t0} ms`);
      expect(stopped - t0).toBeLessThan(5000);
      expect(left - t0).toBeLessThan(5000);
      const cancelled = (await queue.queue.getJob(String(long.id))) as Job;
      expect(cancelled.failedReason).toMatch(/^ABORTED: .*was cancelled/); // its compute thread was stopped
      expect(cancelled.attemptsMade).toBe(1); // stopped is final: not retried
      expect(cancelled.processedOn!).toBeLessThan(t0);

      // The request failed, naming the job that failed and why.
      await coordinator.idle();
      const request = await coordinator.getRequest(TENANT, ID);
      expect(request.status).toBe('failed');
      expect(request.error).toContain(`evaluate job ${failing.id} `);
      expect(request.error).toMatch(/INVALID_TOKENIZER/);
      expect(request.progress.detail).toMatch(/^[2-9] other jobs of the request stopped$/);
      // Only the first failure made it into the request: the stopped siblings did not overwrite the cause.
      expect(request.error).not.toMatch(/CANCELLED/);
    } finally {
      coordinator.stop();
      await runner.cancelGroup(ID).catch(() => undefined);
      for (const w of [first, second]) w?.worker.worker.cancelAllJobs('test over');
      await Promise.all([first.close(), second?.close()]);
      await coordinator.idle();
      await runner.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
    }
  }, 180_000);
});

describe('the in-process runner (no Redis)', () => {
  it("cancelGroup skips the group's jobs not started yet, lets the running one finish, and later jobs of the group run", async () => {
    const started: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const handlers: JobHandlers = {
      evaluate: async (payload) => {
        started.push(payload.evaluationId);
        if (payload.evaluationId === 'a') await gate;
        return payload.evaluationId;
      },
    };
    const runner = new LocalJobRunner(handlers);
    const job = (id: string) => runner.run<string>('evaluate', { tenant: TENANT, evaluationId: id, model: MODEL_DIR, task: 'moby' }, { group: ID }).catch((e: unknown) => e);
    const [a, b, c] = [job('a'), job('b'), job('c')];
    await until('the first job to start', async () => (started.length === 1 ? true : undefined), 5000, 10);
    expect(await runner.cancelGroup(ID)).toEqual({ removed: 2, signalled: 0 });
    release();
    expect(await a).toBe('a');
    expect(await b).toMatchObject({ code: 'CANCELLED' });
    expect(await c).toMatchObject({ code: 'CANCELLED' });
    // A failed request plugged in again runs its jobs: the cancellation applied to the jobs queued then.
    expect(await job('d')).toBe('d');
    expect(started).toEqual(['a', 'd']);
    await runner.close();
  });
});
