import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import swagger from '@fastify/swagger';
import {
  apiCodeOfFastify,
  ApiRateLimiter,
  ClusterError,
  createRequestSchema,
  httpStatusOf,
  packTar,
  unpackTar,
  type ApiRateLimiterOptions,
  type Coordinator,
  type TenantAuth,
  type TuningRequest,
} from '@scaleot/cluster';
import type { ScaleotMetrics } from '@scaleot/metrics';
import { renderMetrics, type HealthCheck } from '@scaleot/metrics';
import { privacyPresetSchema } from '@scaleot/queue';
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
  /** API rate limit per tenant (and per client address before authentication). Defaults of ApiRateLimiterOptions. */
  rateLimit?: ApiRateLimiterOptions;
}

/** One ajv error as `field message`, naming the unknown key when that is the problem (never the value). */
function describeValidation(errors: { instancePath?: string; message?: string; params?: Record<string, unknown> }[], context: string | undefined): { field: string; message: string } {
  const first = errors[0] ?? {};
  const base = (first.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const extra = typeof first.params?.additionalProperty === 'string' ? first.params.additionalProperty.slice(0, 64) : undefined;
  const missing = typeof first.params?.missingProperty === 'string' ? first.params.missingProperty.slice(0, 64) : undefined;
  const field = [base, extra ?? missing].filter(Boolean).join('.') || context || 'body';
  const message = extra !== undefined ? `${field} is not a known field` : missing !== undefined ? `${field} is required` : `${field} ${first.message ?? 'is invalid'}`;
  return { field, message: `${context && context !== 'body' ? `${context}: ` : ''}${message}` };
}

const requestSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    baseModel: { type: 'string' },
    preset: privacyPresetSchema.json,
    task: { type: 'string' },
    managedTuning: { type: 'boolean' },
    status: { type: 'string', enum: ['queued', 'stage1', 'building-emulator', 'emulator-ready', 'tuning', 'adapter-ready', 'plugging-in', 'evaluating', 'done', 'failed', 'cancelled'] },
    progress: { type: 'object', additionalProperties: true },
    error: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    report: { type: 'object', additionalProperties: true },
  },
} as const;

const errorSchema = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } } } as const;
const errorResponses = Object.fromEntries([400, 401, 404, 409, 413, 415, 422, 429].map((code) => [code, errorSchema]));
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
  // ajv as a contract checker, not a fixer: unknown keys are errors (not silently dropped) and
  // "0.5" is not a number.
  const app = Fastify({ logger: false, bodyLimit: 1 << 20, ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } } });
  const limiter = new ApiRateLimiter(options.rateLimit);
  // JSON and tar only: anything else is an honest 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'scaleot coordinator', version: '0.1.0', description: 'Offsite-tuning requests of data owners: emulators out, tuned adapters in, five-number reports back.' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  });
  app.addContentTypeParser(['application/x-tar', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: options.uploadLimitBytes ?? 2 ** 31 }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number; validation?: unknown; validationContext?: string }, _req, reply) => {
    if (error instanceof ClusterError) {
      const status = httpStatusOf(error.code);
      if (status >= 500) return reply.code(500).send({ error: 'INTERNAL', message: 'internal error; see the coordinator log' });
      return reply.code(status).send({ error: error.code, message: error.message, ...(error.where ? { field: error.where } : {}) });
    }
    if (Array.isArray(error.validation)) {
      const { field, message } = describeValidation(error.validation, error.validationContext);
      return reply.code(400).send({ error: 'VALIDATION_FAILED', message, field });
    }
    if (error.statusCode && error.statusCode < 500) {
      const code = apiCodeOfFastify(error.code, error.statusCode);
      // Fastify's own messages may quote the body (JSON parse errors); say what is wrong in our words.
      const message =
        code === 'PAYLOAD_TOO_LARGE' ? 'the body is larger than this route accepts'
        : code === 'UNSUPPORTED_MEDIA_TYPE' ? 'this content type is not accepted here (JSON bodies: application/json; adapter uploads: application/x-tar)'
        : error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError ? 'the body is not valid JSON'
        : error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the body is empty; send a JSON object'
        : 'the request is malformed';
      return reply.code(httpStatusOf(code) === 500 ? 400 : httpStatusOf(code)).send({ error: code, message });
    }
    return reply.code(500).send({ error: 'INTERNAL', message: 'internal error; see the coordinator log' });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: 'NOT_FOUND', message: 'no such route' }));

  const tenantOf = (req: FastifyRequest): string => {
    const tenant = auth.authenticate(req.headers.authorization);
    if (!tenant) throw new ClusterError('UNAUTHORIZED', 'missing or unknown bearer token', { where: 'Authorization' });
    return tenant;
  };

  // The API's rate limit: per tenant (per client address before a valid token), before any work.
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    const key = auth.authenticate(req.headers.authorization) ?? `ip:${req.ip}`;
    const wait = limiter.take(key);
    if (wait > 0) return reply.code(429).header('retry-after', String(wait)).send({ error: 'RATE_LIMITED', message: `too many requests; retry after ${wait} s` });
  });

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
      // The one contract of a tuning request (@scaleot/cluster), as JSON Schema.
      body: createRequestSchema.json,
      response: { 201: requestSchema, ...errorResponses },
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

  app.delete('/v1/requests/:id', {
    schema: {
      summary: 'Cancel a request: its queued jobs are removed, running ones signalled, its storage freed',
      security: secured,
      params: idParams,
      response: {
        200: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' }, previousStatus: { type: 'string' }, removedJobs: { type: 'integer' }, signalledJobs: { type: 'integer' }, freedBytes: { type: 'integer' } } },
        404: errorSchema,
      },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    return coordinator.cancelRequest(tenantOf(req), id);
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

  app.put('/v1/requests/:id/adapter', { schema: { summary: 'Upload a tuned adapter (tar of the adapter artifact directory)', security: secured, params: idParams, response: { 200: requestSchema, ...errorResponses } } }, async (req) => {
    const { id } = req.params as { id: string };
    const tenant = tenantOf(req);
    // Ownership first: another tenant's id is a 404 whatever the body holds.
    await coordinator.getRequest(tenant, id);
    if (!Buffer.isBuffer(req.body)) throw new ClusterError('UNSUPPORTED_MEDIA_TYPE', 'send the adapter directory as application/x-tar', { where: 'content-type' });
    // A tar of the directory itself (adapter/adapter.json) is accepted too: the files count by name.
    const files = unpackTar(req.body).map((f) => ({ name: f.name.split('/').pop()!, data: f.data }));
    if (files.length === 0) throw new ClusterError('BAD_UPLOAD', 'the archive holds no file', { where: 'upload' });
    return publicView(await coordinator.uploadAdapter(tenant, id, files));
  });

  app.post('/v1/requests/:id/plugin', { schema: { summary: 'Plug the adapter into the full model and evaluate the five numbers (idempotent: 200 when already running or done)', security: secured, params: idParams, response: { 200: requestSchema, 202: requestSchema, ...errorResponses } } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const tenant = tenantOf(req);
    const before = await coordinator.getRequest(tenant, id);
    const after = await coordinator.requestPlugin(tenant, id);
    return reply.code(after.updatedAt === before.updatedAt ? 200 : 202).send(publicView(after));
  });

  app.get('/v1/requests/:id/report', { schema: { summary: 'The five-number report (JSON, or Markdown with Accept: text/markdown)', security: secured, params: idParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const { report, markdown } = await coordinator.report(tenantOf(req), id);
    if ((req.headers.accept ?? '').includes('text/markdown')) return reply.header('content-type', 'text/markdown; charset=utf-8').send(markdown);
    return report;
  });

  return app;
}
