import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, startMetricsServer, type HealthStatus, type MetricsServer } from '@scaleot/metrics';
import { sample } from './promText.js';

const PROJECT_METRICS: Record<string, string> = {
  scaleot_jobs: 'gauge',
  scaleot_queue_depth: 'gauge',
  scaleot_job_duration_seconds: 'histogram',
  scaleot_stage1_round_seconds: 'histogram',
  scaleot_tokens_per_second: 'gauge',
  scaleot_transfer_bytes_total: 'counter',
};

describe('startMetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves the project metrics and process metrics in Prometheus text format', async () => {
    const metrics = createMetrics({ defaultLabels: { service: 'worker', worker_group: 'cpu' } });
    metrics.jobDuration.observe({ queue: 'stage2', kind: 'finetune', outcome: 'completed' }, 42);
    metrics.stage1RoundSeconds.observe(0.7);
    metrics.tokensPerSecond.set(1234.5);
    metrics.transferBytes.inc({ direction: 'sent' }, 4096);
    metrics.transferBytes.inc({ direction: 'received' }, 1024);
    metrics.queueDepth.set({ queue: 'stage1' }, 3);
    metrics.jobs.set({ queue: 'stage1', state: 'active' }, 2);
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: metrics.registry });

    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const [name, type] of Object.entries(PROJECT_METRICS)) {
      expect(text, name).toContain(`# HELP ${name} `);
      expect(text, name).toContain(`# TYPE ${name} ${type}\n`);
    }
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(sample(text, 'scaleot_transfer_bytes_total', { direction: 'sent' })).toBe(4096);
    expect(sample(text, 'scaleot_transfer_bytes_total', { direction: 'received' })).toBe(1024);
    expect(sample(text, 'scaleot_queue_depth', { queue: 'stage1' })).toBe(3);
    expect(sample(text, 'scaleot_jobs', { queue: 'stage1', state: 'active' })).toBe(2);
    expect(sample(text, 'scaleot_tokens_per_second', {})).toBe(1234.5);
    expect(sample(text, 'scaleot_stage1_round_seconds_count', {})).toBe(1);
    expect(sample(text, 'scaleot_job_duration_seconds_bucket', { queue: 'stage2', le: '60' })).toBe(1);
    expect(sample(text, 'scaleot_job_duration_seconds_bucket', { queue: 'stage2', le: '30' })).toBe(0);
    // Default labels reach every series, so Prometheus can tell worker groups apart.
    expect(text).toMatch(/scaleot_tokens_per_second\{[^}]*worker_group="cpu"[^}]*\} 1234\.5/);
  });

  it('answers /healthz and /readyz from the health callback with 200 or 503', async () => {
    let status: HealthStatus = { live: true, ready: false, details: { draining: true } };
    const metrics = createMetrics({ processMetrics: false });
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: metrics.registry, health: () => status });

    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ live: true, ready: false, details: { draining: true } });

    status = { live: false, ready: true };
    expect((await fetch(`${server.url}/healthz`)).status).toBe(503);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);

    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('reports a throwing health callback as neither live nor ready', async () => {
    const metrics = createMetrics({ processMetrics: false });
    server = await startMetricsServer({
      port: 0,
      host: '127.0.0.1',
      registry: metrics.registry,
      health: () => {
        throw new Error('redis unreachable');
      },
    });
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ live: false, ready: false, details: { error: 'redis unreachable' } });
  });

  it('rejects an invalid port with INVALID_INPUT', async () => {
    const metrics = createMetrics({ processMetrics: false });
    await expect(startMetricsServer({ port: 70000, registry: metrics.registry })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
  });
});
