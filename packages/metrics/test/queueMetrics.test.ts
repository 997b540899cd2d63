import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { collectQueueMetrics, createMetrics, startMetricsServer, type QueueLike } from '@scaleot/metrics';
import { sample } from './promText.js';

const REDIS = { host: '127.0.0.1', port: 6379 };

describe('queue metrics on a real BullMQ queue', () => {
  const prefix = `scaleot-test-metrics-${randomUUID()}`;
  let queue: Queue;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis({ ...REDIS, maxRetriesPerRequest: null });
    queue = new Queue('stage2', { connection: { ...REDIS }, prefix });
    // 3 plain jobs land in the wait list, 2 with a priority in the prioritized set and 4 in the
    // delayed set: a Redis LLEN of the wait list would report 3 of the 9 jobs nobody has picked up.
    await queue.addBulk([1, 2, 3].map((i) => ({ name: 'finetune', data: { i } })));
    await queue.add('finetune', { i: 4 }, { priority: 1 });
    await queue.add('finetune', { i: 5 }, { priority: 7 });
    for (const i of [6, 7, 8, 9]) await queue.add('finetune', { i }, { delay: 3_600_000 });
  });

  afterAll(async () => {
    await queue?.obliterate({ force: true });
    await queue?.close();
    const leftovers = await redis.keys(`${prefix}:*`);
    if (leftovers.length > 0) await redis.del(...leftovers);
    await redis.quit();
  });

  it('sets scaleot_queue_depth to waiting + prioritized + delayed', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const [counts] = await collectQueueMetrics(queue, metrics);
    expect(counts.counts).toMatchObject({ waiting: 3, prioritized: 2, delayed: 4, active: 0 });
    expect(counts.depth).toBe(9);
    expect(await redis.llen(`${prefix}:stage2:wait`)).toBe(3);

    const depth = await metrics.queueDepth.get();
    expect(depth.values).toEqual([{ labels: { queue: 'stage2' }, value: 9 }]);
    const jobs = await metrics.jobs.get();
    const byState = Object.fromEntries(jobs.values.map((v) => [v.labels.state, v.value]));
    expect(byState).toMatchObject({ waiting: 3, prioritized: 2, delayed: 4, completed: 0, failed: 0 });
  });

  it('refreshes the gauges at scrape time for tracked queues, as the coordinator serves them', async () => {
    const coordinator = createMetrics({ defaultLabels: { service: 'coordinator' } });
    coordinator.trackQueue(queue);
    const worker = createMetrics({ defaultLabels: { service: 'worker', worker_group: 'cpu' } });
    const coordinatorServer = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: coordinator.registry });
    const workerServer = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: worker.registry });
    try {
      let text = await (await fetch(`${coordinatorServer.url}/metrics`)).text();
      expect(sample(text, 'scaleot_queue_depth', { queue: 'stage2' })).toBe(9);
      expect(sample(text, 'scaleot_jobs', { queue: 'stage2', state: 'prioritized' })).toBe(2);

      // A new delayed job shows up on the next scrape without any explicit collect call.
      await queue.add('finetune', { i: 10 }, { delay: 3_600_000 });
      text = await (await fetch(`${coordinatorServer.url}/metrics`)).text();
      expect(sample(text, 'scaleot_queue_depth', { queue: 'stage2' })).toBe(10);
      expect(sample(text, 'scaleot_queue_metrics_errors_total', {})).toBe(0);

      const workerRes = await fetch(`${workerServer.url}/metrics`);
      expect(workerRes.status).toBe(200);
      expect(await workerRes.text()).toContain('# TYPE scaleot_queue_depth gauge');
    } finally {
      await coordinatorServer.close();
      await workerServer.close();
    }
  });

  it('keeps the last values and counts an error when the queue cannot be read', async () => {
    const metrics = createMetrics({ processMetrics: false });
    let fail = false;
    const flaky: QueueLike = {
      name: 'flaky',
      getJobCounts: async (...types: string[]) => {
        if (fail) throw new Error('connection refused');
        return Object.fromEntries(types.map((t) => [t, t === 'delayed' ? 5 : 1]));
      },
    };
    metrics.trackQueue(flaky);
    const previousLevel = process.env.SCALEOT_LOG_LEVEL;
    process.env.SCALEOT_LOG_LEVEL = 'silent';
    try {
      expect(sample(await metrics.registry.metrics(), 'scaleot_queue_depth', { queue: 'flaky' })).toBe(7);
      fail = true;
      const text = await metrics.registry.metrics();
      expect(sample(text, 'scaleot_queue_depth', { queue: 'flaky' })).toBe(7);
      expect(sample(text, 'scaleot_queue_metrics_errors_total', {})).toBe(1);
    } finally {
      if (previousLevel === undefined) delete process.env.SCALEOT_LOG_LEVEL;
      else process.env.SCALEOT_LOG_LEVEL = previousLevel;
    }
  });
});
