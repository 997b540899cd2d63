import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { InvalidInputError } from '@scaleot/core';

/** What `/healthz` (live) and `/readyz` (ready) report. */
export interface HealthStatus {
  /** False once the process cannot recover (Kubernetes restarts it). */
  live: boolean;
  /** False while starting, draining after SIGTERM, or cut off from Redis (no new traffic or jobs). */
  ready: boolean;
  /** Free-form details, returned as JSON next to the two flags. Default: none. */
  details?: Record<string, unknown>;
}

export type HealthCheck = () => HealthStatus | Promise<HealthStatus>;

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (tests). Required: coordinator 8080 shares its API server, workers 9090. */
  port: number;
  /** Interface to bind. Default: `0.0.0.0` (probes and Prometheus come from outside the pod). */
  host?: string;
  registry: Registry;
  /** Called on each `/healthz` and `/readyz` request. Default: always live and ready. */
  health?: HealthCheck;
}

/** A running metrics server. */
export interface MetricsServer {
  readonly server: Server;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** `http://host:port`, with 127.0.0.1 when bound to every interface. */
  readonly url: string;
  close(): Promise<void>;
}

/** The exposition text and its content type, for frameworks that send replies themselves (fastify). */
export async function renderMetrics(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** A node:http handler answering with the registry's metrics in Prometheus text format. */
export function metricsHandler(registry: Registry): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    try {
      const { contentType, body } = await renderMetrics(registry);
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    } catch (error) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`could not collect metrics: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
}

/**
 * A small HTTP server with `/metrics`, `/healthz` (liveness) and `/readyz` (readiness): what workers run
 * on port 9090. Probes answer 200 or 503 with a JSON body.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { port, host = '0.0.0.0', registry } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidInputError(`port must be an integer in 0..65535, got ${port}; set the metrics port option`, {
      where: 'startMetricsServer.port',
    });
  }
  const health: HealthCheck = options.health ?? (() => ({ live: true, ready: true }));
  const serveMetrics = metricsHandler(registry);

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      void serveMetrics(req, res);
    } else if (path === '/healthz' || path === '/readyz') {
      void answerProbe(res, health, path === '/healthz' ? 'live' : 'ready');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics, /healthz or /readyz\n');
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port: bound,
    url: `http://${urlHost}:${bound}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function answerProbe(res: ServerResponse, health: HealthCheck, flag: 'live' | 'ready'): Promise<void> {
  let status: HealthStatus;
  try {
    status = await health();
  } catch (error) {
    status = { live: false, ready: false, details: { error: error instanceof Error ? error.message : String(error) } };
  }
  res.writeHead(status[flag] ? 200 : 503, { 'content-type': 'application/json' });
  res.end(JSON.stringify(status) + '\n');
}
