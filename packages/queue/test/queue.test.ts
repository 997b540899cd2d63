import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ScaleotError } from '@scaleot/core';
import { JobQueue, JobWorker, type JobPayload, type JobQueueOptions, type JobWorkerOptions } from '@scaleot/queue';
import type { Job } from 'bullmq';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

const REDIS = 'redis://127.0.0.1:6379';
const PREFIX = `scaleot-test-${process.pid}-${Date.now().toString(36)}`;
let queueCounter = 0;
const open: Array<{ close(): Promise<void> }> = [];

afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close();
});

afterAll(async () => {
  const redis = new Redis(REDIS);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await redis.quit();
});

function makeQueue(options: JobQueueOptions = {}): JobQueue {
  const queue = new JobQueue({ name: `q${++queueCounter}`, connection: REDIS, prefix: PREFIX, ...options });
  open.push(queue);
  return queue;
}

function makeWorker(queue: JobQueue, options: Omit<JobWorkerOptions, 'queue' | 'prefix' | 'connection'>): JobWorker {
  const worker = new JobWorker({ queue: queue.name, prefix: PREFIX, connection: REDIS, stalledIntervalMs: 5_000, ...options });
  open.push(worker);
  return worker;
}

async function settled(queue: JobQueue, id: string | undefined, timeoutMs = 30_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.queue.getJobState(id!);
    // Read the job only once it has settled: a job object fetched before completion keeps a null returnvalue.
    if (state === 'completed' || state === 'failed') return (await queue.queue.getJob(id!))!;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function shard(overrides: Partial<JobPayload<'stage1.shard'>> = {}): JobPayload<'stage1.shard'> {
  return {
    runId: 'run-1',
    round: 0,
    shardIndex: 0,
    shardCount: 2,
    batch: { type: 'seeded', dataset: 'corpus/train', seed: 1, count: 8 },
    paramsVersion: 0,
    resultAddress: 'tcp://127.0.0.1:5556',
    ...overrides,
  };
}

function rollout(candidateIndex: number): JobPayload<'stage1.rollout'> {
  return {
    runId: 'run-1',
    round: 0,
    candidateIndex,
    mask: [1, 0, 0, 1],
    paramsVersion: 0,
    batch: { type: 'windows', dataset: 'corpus/heldout', windowIndices: [1, 2] },
    resultAddress: 'tcp://127.0.0.1:5556',
  };
}

function evaluate(tenant: string, evaluationId: string): JobPayload<'evaluate'> {
  return { tenant, evaluationId, model: 'models/m', task: 'tasks/t.json' };
}

describe('JobQueue', () => {
  it('refuses an invalid payload before it reaches Redis', async () => {
    const queue = makeQueue();
    await expect(queue.add('stage1.shard', shard({ shardIndex: 5 }))).rejects.toMatchObject({ code: 'INVALID_JOB_PAYLOAD', message: expect.stringContaining('$.shardIndex') });
    await expect(queue.add('stage1.shard', { ...shard(), weights: new Float32Array(4) } as never)).rejects.toMatchObject({ message: expect.stringContaining('@scaleot/transport') });
    await expect(queue.add('evaluate', evaluate('acme', 'e1'), { tenant: 'other' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    expect(await queue.queueDepth()).toBe(0);
  });

  it('counts prioritized and delayed jobs in queueDepth, which a list length misses', async () => {
    const queue = makeQueue();
    await queue.add('stage1.shard', shard({ shardIndex: 0 }));
    await queue.add('stage1.shard', shard({ shardIndex: 1 }));
    await queue.add('stage1.shard', shard({ round: 1 }), { delay: 60_000 });
    await queue.pause();
    await queue.add('evaluate', evaluate('acme', 'e1'));
    expect(await queue.depth()).toEqual({ waiting: 0, prioritized: 3, delayed: 1, total: 4 });
    expect(await queue.queueDepth()).toBe(4);
    const redis = new Redis(REDIS);
    expect(await redis.llen(`${PREFIX}:${queue.name}:wait`)).toBe(0); // what a naive KEDA list trigger would see
    await redis.quit();
  });
});

describe('JobWorker', () => {
  it('fails malformed payloads at once with the reason, and keeps serving', async () => {
    const queue = makeQueue();
    const bad = [
      { ...shard(), round: 'zero' },
      { ...shard(), batch: { type: 'seeded', dataset: 'x', seed: 1 } },
      { ...shard(), gradients: Array.from({ length: 20_000 }, () => 0) },
      { ...shard(), shardIndex: 9 },
    ];
    const jobs = [];
    for (const data of bad) jobs.push(await queue.queue.add('stage1.shard', data, { attempts: 5 })); // bypasses validation, as an old producer could
    const unknown = await queue.queue.add('stage9.unknown', {});
    const good = await queue.add('stage1.shard', shard({ shardIndex: 1 }));
    const ran: number[] = [];
    const invalid: string[] = [];
    const worker = makeWorker(queue, {
      handlers: {
        'stage1.shard': async (payload) => {
          ran.push(payload.shardIndex);
          return { loss: 1.25 };
        },
      },
    });
    worker.on('invalid', (_job, error) => invalid.push(error.code));

    const goodJob = await settled(queue, good.id);
    expect(await goodJob.getState()).toBe('completed');
    expect(goodJob.returnvalue).toEqual({ loss: 1.25 });
    expect(ran).toEqual([1]);
    const reasons = [];
    for (const job of jobs) {
      const done = await settled(queue, job.id);
      expect(await done.getState()).toBe('failed');
      expect(done.attemptsMade).toBe(1); // no retries despite attempts: 5
      reasons.push(done.failedReason);
    }
    expect(reasons[0]).toContain('$.round must be an integer >= 0, got "zero"');
    expect(reasons[1]).toContain('$.batch.count is required');
    expect(reasons[2]).toContain('$.gradients has 20000 items');
    expect(reasons[3]).toContain('$.shardIndex must be < shardCount');
    expect((await settled(queue, unknown.id)).failedReason).toContain('UNKNOWN_JOB_KIND');
    expect(invalid.sort()).toEqual(['INVALID_JOB_PAYLOAD', 'INVALID_JOB_PAYLOAD', 'INVALID_JOB_PAYLOAD', 'INVALID_JOB_PAYLOAD', 'UNKNOWN_JOB_KIND']);
  });

  it('retries a transient error with backoff, then succeeds', async () => {
    const queue = makeQueue();
    const job = await queue.add('stage1.shard', shard(), { attempts: 3, backoff: { type: 'exponential', delay: 100 } });
    const attempts: number[] = [];
    const retries: boolean[] = [];
    const worker = makeWorker(queue, {
      handlers: {
        'stage1.shard': async (_payload, context) => {
          attempts.push(context.attempt);
          await context.progress(context.attempt * 30);
          if (context.attempt < 3) throw new Error('peer timed out');
          return 'done';
        },
      },
    });
    worker.on('failed', (_job, _error, willRetry) => retries.push(willRetry));
    const done = await settled(queue, job.id);
    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toBe('done');
    expect(attempts).toEqual([1, 2, 3]);
    expect(retries).toEqual([true, true]);
    expect(done.progress).toBe(90);
  });

  it('fails an unrecoverable ScaleotError at once, without retries', async () => {
    const queue = makeQueue();
    const job = await queue.add('stage1.shard', shard(), { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
    const attempts: number[] = [];
    makeWorker(queue, {
      handlers: {
        'stage1.shard': async (_payload, context) => {
          attempts.push(context.attempt);
          throw new ScaleotError('DATASET_MISSING', 'corpus/train does not exist', { unrecoverable: true });
        },
      },
    });
    const done = await settled(queue, job.id);
    expect(await done.getState()).toBe('failed');
    expect(attempts).toEqual([1]);
    expect(done.failedReason).toBe('DATASET_MISSING: corpus/train does not exist');
  });

  it('runs a flow parent after its children, with their results', async () => {
    const queue = makeQueue();
    const order: string[] = [];
    makeWorker(queue, {
      concurrency: 3,
      handlers: {
        'stage1.shard': async (payload) => {
          order.push(`shard${payload.shardIndex}`);
          return { shard: payload.shardIndex, gradNorm: 0.5 + payload.shardIndex };
        },
        'stage1.rollout': async (payload) => {
          order.push(`rollout${payload.candidateIndex}`);
          return { candidate: payload.candidateIndex, loss: 3 - payload.candidateIndex };
        },
        'stage1.round': async (payload, context) => {
          order.push('round');
          const children = Object.values(await context.childrenValues<Record<string, number>>());
          return { round: payload.round, children: children.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) };
        },
      },
    });
    const node = await queue.addFlow({
      kind: 'stage1.round',
      payload: { runId: 'run-1', round: 0, paramsVersion: 0, shardCount: 2, candidateCount: 1 },
      children: [
        { kind: 'stage1.shard', payload: shard({ shardIndex: 0 }) },
        { kind: 'stage1.shard', payload: shard({ shardIndex: 1 }) },
        { kind: 'stage1.rollout', payload: rollout(0) },
      ],
    });
    const parent = await settled(queue, node.job.id);
    expect(await parent.getState()).toBe('completed');
    expect(order.at(-1)).toBe('round');
    expect(order.slice(0, 3).sort()).toEqual(['rollout0', 'shard0', 'shard1']);
    expect(parent.returnvalue).toEqual({
      round: 0,
      children: [{ candidate: 0, loss: 3 }, { gradNorm: 0.5, shard: 0 }, { gradNorm: 1.5, shard: 1 }],
    });
  });

  it('fails a flow parent when a child fails for good', async () => {
    const queue = makeQueue();
    makeWorker(queue, {
      handlers: {
        'stage1.shard': async () => {
          throw new ScaleotError('BAD_SHARD', 'no such windows');
        },
        'stage1.round': async () => 'should not run',
      },
    });
    const node = await queue.addFlow({
      kind: 'stage1.round',
      payload: { runId: 'run-1', round: 0, paramsVersion: 0, shardCount: 1, candidateCount: 1 },
      children: [{ kind: 'stage1.shard', payload: shard() }],
    });
    const parent = await settled(queue, node.job.id);
    expect(await parent.getState()).toBe('failed');
  });

  it('runs jobs by tenant tier, first in first out within a tier', async () => {
    const queue = makeQueue({ tenants: { gold: { tier: 'premium' }, bulk: { tier: 'batch' } } });
    const added = [];
    for (const [tenant, id] of [['bulk', 'b1'], ['acme', 's1'], ['gold', 'p1'], ['bulk', 'b2'], ['acme', 's2'], ['gold', 'p2']]) {
      added.push(await queue.add('evaluate', evaluate(tenant, id)));
    }
    expect(added.map((job) => job.opts.priority)).toEqual([100, 10, 1, 100, 10, 1]);
    const order: string[] = [];
    makeWorker(queue, {
      handlers: {
        evaluate: async (payload) => {
          order.push(payload.evaluationId);
        },
      },
    });
    for (const job of added) await settled(queue, job.id);
    expect(order).toEqual(['p1', 'p2', 's1', 's2', 'b1', 'b2']);
  });

  it('limits job starts per tenant while other tenants keep running', async () => {
    const queue = makeQueue();
    const durationMs = 3000;
    const added = [];
    for (const id of ['a1', 'a2', 'a3', 'a4']) added.push(await queue.add('evaluate', evaluate('limited', id)));
    for (const id of ['b1', 'b2']) added.push(await queue.add('evaluate', evaluate('free', id)));
    const starts: Array<{ id: string; at: number }> = [];
    const limited: string[] = [];
    const worker = makeWorker(queue, {
      tenants: { limited: { rateLimit: { max: 2, durationMs } } },
      handlers: {
        evaluate: async (payload) => {
          starts.push({ id: payload.evaluationId, at: Date.now() });
        },
      },
    });
    worker.on('rateLimited', (job, tenant) => limited.push(`${tenant}:${(job.data as { evaluationId: string }).evaluationId}`));
    for (const job of added) expect(await (await settled(queue, job.id)).getState()).toBe('completed');
    const order = starts.map((s) => s.id);
    // a1, a2 use the window; a3, a4 wait for it (in either order) while the other tenant runs on.
    expect(order.slice(0, 4)).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(order.slice(4).sort()).toEqual(['a3', 'a4']);
    expect(limited).toEqual(expect.arrayContaining(['limited:a3', 'limited:a4']));
    expect(limited.every((entry) => entry.startsWith('limited:'))).toBe(true);
    // At most 2 starts of the limited tenant in any window of durationMs (slack for the gap between the
    // Redis clock that grants a start and the handler that records it; unlimited, they would be ms apart).
    const limitedStarts = starts.filter((s) => s.id.startsWith('a')).map((s) => s.at);
    expect(limitedStarts[2] - limitedStarts[0]).toBeGreaterThanOrEqual(durationMs - 250);
    expect(limitedStarts[3] - limitedStarts[1]).toBeGreaterThanOrEqual(durationMs - 250);
    const a3 = await queue.queue.getJob(added[2].id!);
    expect(a3?.attemptsMade).toBeLessThanOrEqual(1); // deferral does not use up attempts
  });

  it('re-runs a job whose worker process was killed with SIGKILL', async () => {
    const queue = makeQueue();
    const job = await queue.add('stage1.shard', shard({ shardIndex: 1 }));
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/stallingWorker.mjs', import.meta.url)), queue.name, PREFIX], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SCALEOT_LOG_LEVEL: 'silent' },
    });
    const exited = once(child, 'exit');
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes(`started ${job.id}`)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`worker exited early (${code}): ${output}`)));
    });
    expect(await (await queue.queue.getJob(job.id!))!.getState()).toBe('active');
    child.kill('SIGKILL');
    await exited;

    const rerun: number[] = [];
    makeWorker(queue, {
      lockDurationMs: 1000,
      stalledIntervalMs: 500,
      handlers: {
        'stage1.shard': async (payload, context) => {
          rerun.push(payload.shardIndex);
          return { recoveredBy: 'second worker', attempt: context.attempt };
        },
      },
    });
    const done = await settled(queue, job.id);
    expect(await done.getState()).toBe('completed');
    expect(rerun).toEqual([1]);
    expect(done.returnvalue).toMatchObject({ recoveredBy: 'second worker' });
    expect(done.stalledCounter).toBe(1);
  });

  it('on SIGTERM finishes the running job before the process exits', async () => {
    const queue = makeQueue();
    const job = await queue.add('stage1.shard', shard({ shardIndex: 1 }));
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/gracefulWorker.mjs', import.meta.url)), queue.name, PREFIX], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SCALEOT_LOG_LEVEL: 'silent' },
    });
    const exited = once(child, 'exit');
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    while (!output.includes(`started ${job.id}`)) {
      if (child.exitCode !== null) throw new Error(`worker exited early: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(output).toContain('closed on SIGTERM');
    const done = await queue.queue.getJob(job.id!);
    expect(await done!.getState()).toBe('completed'); // already, when the process is gone
    expect(done!.returnvalue).toEqual({ finished: 1 });
  });

  it('closes gracefully: waits for the running job', async () => {
    const queue = makeQueue();
    const job = await queue.add('stage1.shard', shard());
    let release!: () => void;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = new JobWorker({
      queue: queue.name,
      prefix: PREFIX,
      connection: REDIS,
      handlers: {
        'stage1.shard': async () => {
          started();
          await new Promise<void>((resolve) => (release = resolve));
          return 'finished';
        },
      },
    });
    await running;
    let closed = false;
    const closing = worker.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    release();
    await closing;
    const done = await settled(queue, job.id);
    expect(done.returnvalue).toBe('finished');
  });
});
