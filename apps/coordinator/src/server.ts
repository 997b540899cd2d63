import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import swagger from '@fastify/swagger';
import { ClusterError, packTar, unpackTar, type Coordinator, type TenantAuth, type TuningRequest } from '@scaleot/cluster';
import type { ScaleotMetrics } from '@scaleot/metrics';
import { renderMetrics, type HealthCheck } from '@scaleot/metrics';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';

export interface ServerOptions {
  coordinator: Coordinator;
  auth: TenantAuth;
  metrics: ScaleotMetrics;
  health: HealthCheck;
  /** Serve /metrics on the API port. Default true; false when it has its own port (SCALEOT_METRICS_PORT). */
  serveMetrics?: boolean;
  /** Largest adapter upload, bytes. Default 2 GiB. */
  uploadLimitBytes?: number;
}

const STATUS_OF: Record<string, number> = { NOT_FOUND: 404, BAD_REQUEST: 400, CONFLICT: 409, UNAUTHORIZED: 401, FORBIDDEN: 403, INVALID_INPUT: 400 };

const presetSchema = {
  type: 'object',
  required: ['nAdapter', 'alpha', 'beta'],
  additionalProperties: false,
  properties: {
    nAdapter: { type: 'integer', minimum: 0, description: 'N_a: adapter blocks (sandwich, split bottom/top)' },
    alpha: { type: 'number', minimum: 0, exclusiveMaximum: 1, description: 'fraction of middle blocks replaced by harmonizers' },
    beta: { type: 'number', minimum: 0, exclusiveMaximum: 1, description: 'fraction of attention rank removed (SRC)' },
  },
} as const;

const requestSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    baseModel: { type: 'string' },
    preset: presetSchema,
    task: { type: 'string' },
    managedTuning: { type: 'boolean' },
    status: { type: 'string', enum: ['queued', 'stage1', 'building-emulator', 'emulator-ready', 'tuning', 'adapter-ready', 'plugging-in', 'evaluating', 'done', 'failed'] },
    progress: { type: 'object', additionalProperties: true },
    error: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    report: { type: 'object', additionalProperties: true },
  },
} as const;

const errorSchema = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 80 } } } as const;
const fileParams = { type: 'object', required: ['id', 'name'], properties: { id: { type: 'string', maxLength: 80 }, name: { type: 'string', maxLength: 200 } } } as const;
const secured = [{ bearerAuth: [] }];

/** What the API shows of a request (storage paths stay private). */
function publicView(r: TuningRequest) {
  const { artifacts, tuneHyper, ...rest } = r;
  void tuneHyper;
  return { ...rest, artifacts: Object.fromEntries(Object.keys(artifacts).map((k) => [k, true])) };
}

/** The coordinator's HTTP server: data owners' API (bearer token per tenant), OpenAPI, probes, metrics. */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const { coordinator, auth, metrics, health } = options;
  const app = Fastify({ logger: false, bodyLimit: 1 << 20 });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'scaleot coordinator', version: '0.1.0', description: 'Offsite-tuning requests of data owners: emulators out, tuned adapters in, five-number reports back.' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  });
  app.addContentTypeParser(['application/x-tar', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: options.uploadLimitBytes ?? 2 ** 31 }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number; validation?: unknown }, _req, reply) => {
    if (error instanceof ClusterError) {
      const status = STATUS_OF[error.code] ?? 500;
      return reply.code(status).send({ error: error.code, message: error.message });
    }
    if (error.validation || (error.statusCode && error.statusCode < 500)) {
      return reply.code(error.statusCode ?? 400).send({ error: 'BAD_REQUEST', message: error.message });
    }
    return reply.code(500).send({ error: 'INTERNAL', message: 'internal error; see the coordinator log' });
  });

  const tenantOf = (req: FastifyRequest): string => {
    const tenant = auth.authenticate(req.headers.authorization);
    if (!tenant) throw new ClusterError('UNAUTHORIZED', 'missing or unknown bearer token', { where: 'Authorization' });
    return tenant;
  };

  app.get('/healthz', { schema: { hide: true } }, async (_req, reply) => {
    const h = await health();
    return reply.code(h.live ? 200 : 503).send({ live: h.live, ready: h.ready, ...h.details });
  });
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const h = await health();
    return reply.code(h.ready ? 200 : 503).send({ live: h.live, ready: h.ready, ...h.details });
  });
  if (options.serveMetrics ?? true) {
    app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
      const { contentType, body } = await renderMetrics(metrics.registry);
      return reply.header('content-type', contentType).send(body);
    });
  }
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.post('/v1/requests', {
    schema: {
      summary: 'Create a tuning request',
      security: secured,
      body: {
        type: 'object',
        required: ['baseModel', 'preset', 'task'],
        additionalProperties: false,
        properties: {
          baseModel: { type: 'string', maxLength: 64 },
          preset: presetSchema,
          task: { type: 'string', maxLength: 64 },
          managedTuning: { type: 'boolean', description: 'let the cluster tune the adapter on the task (else download, tune, upload)' },
          tuneHyper: { type: 'object', additionalProperties: { type: 'number' } },
        },
      },
      response: { 201: requestSchema, 400: errorSchema, 401: errorSchema },
    },
  }, async (req, reply) => {
    const request = await coordinator.createRequest(tenantOf(req), req.body as never);
    return reply.code(201).send(publicView(request));
  });

  app.get('/v1/requests', { schema: { summary: 'List this data owner\'s requests', security: secured, response: { 200: { type: 'array', items: requestSchema } } } }, async (req) =>
    (await coordinator.listRequests(tenantOf(req))).map(publicView),
  );

  app.get('/v1/requests/:id', { schema: { summary: 'Status and progress of a request', security: secured, params: idParams, response: { 200: requestSchema, 404: errorSchema } } }, async (req) => {
    const { id } = req.params as { id: string };
    return publicView(await coordinator.getRequest(tenantOf(req), id));
  });

  app.get('/v1/requests/:id/events', { schema: { summary: 'Server-sent events: every status/progress update until done or failed', security: secured, params: idParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const request = await coordinator.getRequest(tenantOf(req), id);
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (r: TuningRequest) => {
      reply.raw.write(`event: status\ndata: ${JSON.stringify(publicView(r))}\n\n`);
      if (r.status === 'done' || r.status === 'failed') finish();
    };
    const heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), 15_000);
    const unsubscribe = coordinator.subscribe(request, send);
    const finish = () => {
      clearInterval(heartbeat);
      unsubscribe();
      reply.raw.end();
    };
    req.raw.on('close', finish);
    send(request);
  });

  const fileRoutes = (artifact: 'emulator' | 'adapter', what: string) => {
    app.get(`/v1/requests/:id/${artifact}`, { schema: { summary: `Files of the ${what}`, security: secured, params: idParams } }, async (req) => {
      const { id } = req.params as { id: string };
      return (await coordinator.artifactFiles(tenantOf(req), id, artifact)).map(({ name, size }) => ({ name, size, url: `/v1/requests/${id}/${artifact}/files/${name}` }));
    });
    app.get(`/v1/requests/:id/${artifact}.tar`, { schema: { summary: `The ${what} as one tar archive`, security: secured, params: idParams } }, async (req, reply) => {
      const { id } = req.params as { id: string };
      const files = await coordinator.artifactFiles(tenantOf(req), id, artifact);
      const tar = packTar(await Promise.all(files.map(async (f) => ({ name: f.name, data: await readFile(f.path) }))));
      return reply.header('content-type', 'application/x-tar').header('content-disposition', `attachment; filename="${id}-${artifact}.tar"`).send(tar);
    });
    app.get(`/v1/requests/:id/${artifact}/files/:name`, { schema: { summary: `One file of the ${what}`, security: secured, params: fileParams } }, async (req, reply) => {
      const { id, name } = req.params as { id: string; name: string };
      const file = (await coordinator.artifactFiles(tenantOf(req), id, artifact)).find((f) => f.name === name);
      if (!file) throw new ClusterError('NOT_FOUND', `no file "${name}" in the ${artifact}`, { where: name });
      return reply.header('content-type', 'application/octet-stream').header('content-length', file.size).send(createReadStream(file.path));
    });
  };
  fileRoutes('emulator', 'emulator (with the adapter blocks to tune)');
  fileRoutes('adapter', 'tuned adapter');

  app.put('/v1/requests/:id/adapter', { schema: { summary: 'Upload a tuned adapter (tar of the adapter artifact directory)', security: secured, params: idParams, response: { 200: requestSchema } } }, async (req) => {
    const { id } = req.params as { id: string };
    const tenant = tenantOf(req);
    // Ownership first: another tenant's id is a 404 whatever the body holds.
    await coordinator.getRequest(tenant, id);
    if (!Buffer.isBuffer(req.body)) throw new ClusterError('BAD_REQUEST', 'send the adapter directory as application/x-tar', { where: 'upload' });
    const files = unpackTar(req.body).map((f) => ({ name: f.name.split('/').pop()!, data: f.data }));
    if (files.length === 0) throw new ClusterError('BAD_REQUEST', 'the archive holds no file', { where: 'upload' });
    return publicView(await coordinator.uploadAdapter(tenant, id, files));
  });

  app.post('/v1/requests/:id/plugin', { schema: { summary: 'Plug the adapter into the full model and evaluate the five numbers', security: secured, params: idParams, response: { 202: requestSchema } } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    return reply.code(202).send(publicView(await coordinator.requestPlugin(tenantOf(req), id)));
  });

  app.get('/v1/requests/:id/report', { schema: { summary: 'The five-number report (JSON, or Markdown with Accept: text/markdown)', security: secured, params: idParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const { report, markdown } = await coordinator.report(tenantOf(req), id);
    if ((req.headers.accept ?? '').includes('text/markdown')) return reply.header('content-type', 'text/markdown; charset=utf-8').send(markdown);
    return report;
  });

  return app;
}
