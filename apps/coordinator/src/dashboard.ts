import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import {
  ClusterError,
  evaluationProtocol,
  explainedReport,
  presetName,
  queueDepths,
  runVersions,
  workersOverview,
  type Coordinator,
  type EvaluationProtocol,
  Stage1Monitor,
  type Stage1Progress,
  TenantAuth,
  type TuningRequest,
} from '@scaleot/cluster';
import { fiveNumbersChart, scoreTrajectoryChart, stage1CurvesChart } from '@scaleot/plots';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface DashboardOptions {
  coordinator: Coordinator;
  /** Data owners' tokens (the API's). */
  auth: TenantAuth;
  /** Operators' tokens (`SCALEOT_OPERATOR_TOKENS_FILE`, same format); unset: no operator view. */
  operatorAuth?: TenantAuth;
  storageDir: string;
  /** The queues whose workers and depths the operator sees. */
  queues: Parameters<typeof workersOverview>[0];
  stage1: Stage1Monitor;
  /** Task data of the evaluation protocol. Default `<storage>/data`. */
  dataRoot?: string;
  /** Evaluation limits of the coordinator's evaluate jobs (the report's protocol section). */
  evalHyper?: Record<string, number>;
  /** Tuning settings requests get when they name none (the report's hyper-parameters). */
  defaultTuneHyper?: Record<string, number>;
  /** Operator snapshot interval of the live stream, ms. Default 2000. */
  operatorIntervalMs?: number;
}

/** Operators' tokens from `SCALEOT_OPERATOR_TOKENS_FILE` (`{"name": "token"}`, re-read on change); unset: no operator view. */
export function operatorAuthFromEnv(env: NodeJS.ProcessEnv = process.env): TenantAuth | undefined {
  return env.SCALEOT_OPERATOR_TOKENS_FILE ? TenantAuth.fromFile(env.SCALEOT_OPERATOR_TOKENS_FILE) : undefined;
}

/** The built browser app (index.html, app.js, style.css), shipped in the package's dist/. */
const ASSETS = resolve(import.meta.dirname, 'ui');
const CONTENT_TYPES: Record<string, string> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' };

type Session = { role: 'data-owner'; tenant: string } | { role: 'operator'; name: string };

/** The public view of a request (same as the API's: storage paths stay private). */
function publicView(r: TuningRequest) {
  const { artifacts, tuneHyper, ...rest } = r;
  void tuneHyper;
  return { ...rest, artifacts: Object.fromEntries(Object.keys(artifacts).map((k) => [k, true])) };
}

/**
 * The dashboard at /ui: static assets, and JSON/SSE endpoints under /ui/api behind the same bearer
 * tokens as the API. A data owner's token sees only their own requests (the /v1 API does the rest);
 * an operator token sees stage 1, workers, queues and every tenant's requests.
 */
export async function registerDashboard(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const { coordinator, auth, operatorAuth, storageDir } = options;
  const dataRoot = options.dataRoot ?? join(storageDir, 'data');

  const session = (req: FastifyRequest): Session => {
    const operator = operatorAuth?.authenticate(req.headers.authorization);
    if (operator) return { role: 'operator', name: operator };
    const tenant = auth.authenticate(req.headers.authorization);
    if (tenant) return { role: 'data-owner', tenant };
    throw new ClusterError('UNAUTHORIZED', 'missing or unknown bearer token', { where: 'Authorization' });
  };
  const tenantOf = (req: FastifyRequest): string => {
    const s = session(req);
    if (s.role !== 'data-owner') throw new ClusterError('FORBIDDEN', 'this view is for data-owner tokens', { where: 'Authorization' });
    return s.tenant;
  };
  const operatorOf = (req: FastifyRequest): string => {
    const s = session(req);
    if (s.role !== 'operator') throw new ClusterError('FORBIDDEN', 'the operator view needs an operator token (SCALEOT_OPERATOR_TOKENS_FILE)', { where: 'Authorization' });
    return s.name;
  };

  const asset = (file: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const path = join(ASSETS, file);
    if (!existsSync(path)) throw new ClusterError('NOT_FOUND', `dashboard asset ${file} is missing: build the coordinator package (npm run build)`, { where: path });
    return reply.header('content-type', CONTENT_TYPES[file]).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(await readFile(path));
  };
  app.get('/ui', { schema: { hide: true } }, asset('index.html'));
  app.get('/ui/', { schema: { hide: true } }, asset('index.html'));
  app.get('/ui/app.js', { schema: { hide: true } }, asset('app.js'));
  app.get('/ui/style.css', { schema: { hide: true } }, asset('style.css'));

  app.get('/ui/api/session', { schema: { hide: true } }, async (req) => {
    const s = session(req);
    return s.role === 'operator' ? { role: s.role, name: s.name } : { role: s.role, name: s.tenant };
  });

  const protocols = new Map<string, Promise<EvaluationProtocol | undefined>>();
  const protocolOf = (r: TuningRequest) => {
    const key = `${r.baseModel}/${r.task}`;
    if (!protocols.has(key)) {
      protocols.set(key, evaluationProtocol(join(storageDir, 'models', r.baseModel), r.task, dataRoot, options.evalHyper ?? {}).catch(() => undefined));
    }
    return protocols.get(key)!;
  };
  const doneRequest = async (req: FastifyRequest): Promise<TuningRequest> => {
    const { id } = req.params as { id: string };
    const request = await coordinator.getRequest(tenantOf(req), id);
    if (!request.report) throw new ClusterError('CONFLICT', `request ${id} has no report yet (status ${request.status})`, { where: id });
    return request;
  };

  app.get('/ui/api/requests/:id/charts', { schema: { hide: true } }, async (req) => {
    const r = await doneRequest(req);
    return { fiveNumbers: await fiveNumbersChart([{ emulator: presetName(r.preset), ...r.report! }], `${r.task}: the five numbers`) };
  });

  app.get('/ui/api/requests/:id/report', { schema: { hide: true } }, async (req, reply) => {
    const r = await doneRequest(req);
    const versions = await runVersions();
    const protocol = await protocolOf(r);
    const report = await explainedReport({
      title: `Request ${r.id}: ${r.task} on ${r.baseModel}, ${presetName(r.preset)}`,
      baseModel: r.baseModel,
      emulators: [{ preset: r.preset, report: r.report!, request: r.id }],
      protocol,
      versions: { ...versions, ...(protocol ? { 'evaluation protocol': protocol.protocolVersion } : {}) },
      hyperParameters: { 'adapter tuning': { ...options.defaultTuneHyper, ...r.tuneHyper, managed: r.managedTuning }, evaluation: options.evalHyper ?? {} },
    });
    if ((req.headers.accept ?? '').includes('text/markdown')) return reply.header('content-type', 'text/markdown; charset=utf-8').send(report.markdown);
    return reply.header('content-type', 'text/html; charset=utf-8').send(report.html);
  });

  // Charts of a stage-1 run are rendered again only when a round was added.
  const stage1Charts = new Map<string, { steps: number; curves: string; trajectories: string }>();
  const stage1View = async (p: Stage1Progress) => {
    let charts = stage1Charts.get(p.model);
    if (!charts || charts.steps !== p.log.length) {
      charts = p.log.length
        ? { steps: p.log.length, curves: await stage1CurvesChart(p.log, `Stage 1 of ${p.model}: loss and reward`), trajectories: await scoreTrajectoryChart(p.log, `Stage 1 of ${p.model}: importance scores`) }
        : { steps: 0, curves: '', trajectories: '' };
      stage1Charts.set(p.model, charts);
    }
    const { log, ...rest } = p;
    void log;
    return { ...rest, charts: { curves: charts.curves, trajectories: charts.trajectories } };
  };
  const overview = async () => {
    const tenantsDir = join(storageDir, 'tenants');
    const tenants = new Set(auth.tenants);
    if (existsSync(tenantsDir)) for (const t of await readdir(tenantsDir)) tenants.add(basename(t));
    const requests = (await Promise.all([...tenants].map((t) => coordinator.listRequests(t).catch(() => [])))).flat().sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    const [workers, queues, stage1] = await Promise.all([workersOverview(options.queues), queueDepths(options.queues), options.stage1.snapshot()]);
    return { at: new Date().toISOString(), workers, queues, stage1: await Promise.all(stage1.map(stage1View)), requests: requests.map(publicView) };
  };

  app.get('/ui/api/operator/overview', { schema: { hide: true } }, async (req) => {
    operatorOf(req);
    return overview();
  });

  app.get('/ui/api/operator/events', { schema: { hide: true } }, async (req, reply) => {
    operatorOf(req);
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const push = async () => {
      try {
        const snapshot = await overview();
        if (!closed) reply.raw.write(`event: overview\ndata: ${JSON.stringify(snapshot)}\n\n`);
      } catch (error) {
        if (!closed) reply.raw.write(`event: problem\ndata: ${JSON.stringify({ message: error instanceof Error ? error.message : String(error) })}\n\n`);
      }
      if (!closed) timer = setTimeout(push, options.operatorIntervalMs ?? 2000);
    };
    req.raw.on('close', () => {
      closed = true;
      clearTimeout(timer);
    });
    await push();
  });
}
