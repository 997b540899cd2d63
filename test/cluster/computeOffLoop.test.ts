import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterWorker, clusterConfigFromEnv, QueueJobRunner } from '@scaleot/cluster';
import { JobQueue } from '@scaleot/queue';
import { QueueEvents, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, spawnApp, stopProcess, uniquePrefix, until } from './helpers.js';

// Compute runs on the worker's compute thread, not its event loop: with a 1 s job lock (renewed every
// 0.5 s) and a 0.5 s stalled check, a real evaluation lasting several lock durations completes on the
// first attempt while /healthz answers throughout; SIGTERM mid-job drains it; a cancelled job's compute
// stops within 5 s.
const LOCK_MS = 1000;
let storage: string;

beforeAll(async () => {
  storage = await mkdtemp(join(tmpdir(), 'scaleot-offloop-'));
  await symlink(DATA_ROOT, join(storage, 'data'));
});

afterAll(async () => {
  await rm(storage, { recursive: true, force: true });
});

function evaluation(id: string, maxBlocks: number) {
  return { tenant: 'owner', evaluationId: id, model: MODEL_DIR, task: 'moby', hyper: { maxBlocks, evalBatchSize: 2 } };
}

describe('compute off the event loop (worker app, real queue)', () => {
  it('a CPU-bound job longer than 3 lock durations completes without a stall while /healthz answers; SIGTERM mid-job drains it', async () => {
    const prefix = uniquePrefix('offloop');
    const queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    const events = new QueueEvents('scaleot', { connection: { url: REDIS_URL }, prefix });
    const stalled: string[] = [];
    events.on('stalled', ({ jobId }) => stalled.push(jobId));
    const worker = spawnApp('worker', { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_JOB_LOCK_MS: String(LOCK_MS), SCALEOT_STALLED_INTERVAL_MS: '500', SCALEOT_COORDINATOR_HOST: '127.0.0.1' });
    try {
      await events.waitUntilReady();
      const ready = await worker.waitForLog('worker ready', 90_000);
      const healthz = `${String(ready.metrics)}/healthz`;

      // 1. A long job on short locks, with the health probe polled all along.
      const job = await queue.add('evaluate', evaluation('long', 24) as never);
      const probes: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const res = await fetch(healthz, { signal: AbortSignal.timeout(LOCK_MS) }).catch(() => undefined);
          probes.push(res?.status ?? 0);
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      const state = await until('the long job to finish', async () => { const s = await job.getState(); return s === 'completed' || s === 'failed' ? s : undefined; }, 180_000, 200);
      polling = false;
      await poller;
      const done = (await queue.queue.getJob(String(job.id))) as Job;
      expect(state).toBe('completed');
      expect(done.finishedOn! - done.processedOn!).toBeGreaterThan(3 * LOCK_MS); // the premise: it outlived 3 locks
      expect(done.attemptsMade).toBeLessThanOrEqual(1);
      expect(done.stalledCounter ?? 0).toBe(0);
      expect(stalled).toEqual([]);
      expect((done.returnvalue as { count: number }).count).toBeGreaterThan(0);
      expect(probes.length).toBeGreaterThanOrEqual(3 * (LOCK_MS / 250));
      expect(probes.every((s) => s === 200)).toBe(true); // every probe answered within a lock duration

      // 2. SIGTERM while a job computes: the worker finishes it (result recorded), then exits 0.
      const drained = await queue.add('evaluate', evaluation('drained', 12) as never);
      await until('the job to start computing', async () => ((await drained.getState()) === 'active' ? true : undefined), 60_000);
      worker.proc.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      expect(await drained.getState()).toBe('completed');
      const after = (await queue.queue.getJob(String(drained.id))) as Job;
      expect((after.returnvalue as { evaluationId: string }).evaluationId).toBe('drained');
      expect(stalled).toEqual([]);
    } finally {
      await stopProcess(worker);
      await events.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
    }
  }, 300_000);
});

describe('cancelling a running job (in-process worker)', () => {
  it("stops the job's compute within 5 s and keeps serving", async () => {
    const prefix = uniquePrefix('cancel');
    const config = clusterConfigFromEnv({ SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_JOB_LOCK_MS: String(LOCK_MS), SCALEOT_STALLED_INTERVAL_MS: '500' });
    const worker = await ClusterWorker.start({ config });
    const queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    try {
      // A whole-Moby-Dick evaluation: minutes of compute if nothing stops it.
      const job = await queue.add('evaluate', evaluation('cancelled', 10_000) as never);
      await until('the job to be computing', async () => ((await job.getState()) === 'active' && worker.compute.busy ? true : undefined), 90_000);
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      expect(worker.worker.worker.cancelJob(String(job.id), 'request cancelled by its owner')).toBe(true);
      const state = await until('the cancelled job to fail', async () => { const s = await job.getState(); return s === 'failed' ? s : undefined; }, 5000, 50);
      const stoppedMs = Date.now() - t0;
      expect(state).toBe('failed');
      expect(stoppedMs).toBeLessThan(5000);
      expect(worker.compute.busy).toBe(false); // the compute thread was terminated, not left running
      const failed = (await queue.queue.getJob(String(job.id))) as Job;
      expect(failed.failedReason).toMatch(/ABORTED/);
      expect(failed.attemptsMade).toBe(1); // cancelled is final: not retried
      // The worker takes the next job on a fresh compute thread.
      const next = await queue.add('evaluate', evaluation('after', 1) as never);
      const nextState = await until('the next job', async () => { const s = await next.getState(); return s === 'completed' || s === 'failed' ? s : undefined; }, 90_000, 200);
      expect(nextState).toBe('completed');
    } finally {
      await worker.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
    }
  }, 240_000);

  it("deleting the job's request (the coordinator's cancel flag) stops its compute within 5 s", async () => {
    const prefix = uniquePrefix('delete');
    const config = clusterConfigFromEnv({ SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_METRICS_PORT: '0', SCALEOT_JOB_LOCK_MS: String(LOCK_MS), SCALEOT_STALLED_INTERVAL_MS: '500' });
    const worker = await ClusterWorker.start({ config });
    const queue = new JobQueue({ name: 'scaleot', connection: REDIS_URL, prefix });
    const runner = new QueueJobRunner(queue, REDIS_URL);
    try {
      // What the coordinator does for a request: run its jobs in a group; DELETE cancels the group.
      const running = runner.run('evaluate', evaluation('deleted', 10_000) as never, { group: 'req-1' }).catch((e: unknown) => e);
      await until('the job to be computing', async () => (worker.compute.busy ? true : undefined), 90_000);
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      expect(await runner.cancelGroup('req-1')).toEqual({ removed: 0, signalled: 1 });
      expect(await running).toMatchObject({ code: 'CANCELLED' });
      const [job] = await queue.queue.getJobs(['active', 'failed', 'completed']);
      const state = await until('the job to fail on the worker', async () => { const s = await job.getState(); return s === 'failed' ? s : undefined; }, 5000, 50);
      expect(state).toBe('failed');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(worker.compute.busy).toBe(false);
      const failed = (await queue.queue.getJob(String(job.id))) as Job;
      expect(failed.attemptsMade).toBe(1);
    } finally {
      await runner.close();
      await worker.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
    }
  }, 240_000);
});
