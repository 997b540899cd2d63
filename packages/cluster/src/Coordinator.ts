import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile, atomicWriteJson, createLogger, type Logger } from '@scaleot/core';
import { isBuiltinTask } from '@scaleot/data';
import { emulatorFingerprint, readAdapter, readManifest, writeArtifactDir, type TrainHyperParameters } from '@scaleot/offsite';
import { trainHyperSchema } from '@scaleot/queue';
import { DEFAULT_STAGE1, STAGE1_MANIFEST } from '@scaleot/scaleot';
import { ClusterError } from './ClusterError.js';
import { checkContract, contractIssues, createRequestSchema, NAME_PATTERN } from './contracts.js';
import type { JobRunner } from './JobRunner.js';
import type { EvaluateJobResult } from './pipelineHandlers.js';

const ID = NAME_PATTERN;

/** Privacy preset of an emulator: N_a adapter blocks, α replaced fraction, β rank removed (method §3). */
export interface PrivacyPreset {
  nAdapter: number;
  alpha: number;
  beta: number;
}

export type RequestStatus =
  | 'queued'
  | 'stage1'
  | 'building-emulator'
  | 'emulator-ready'
  | 'tuning'
  | 'adapter-ready'
  | 'plugging-in'
  | 'evaluating'
  | 'done'
  | 'failed'
  | 'cancelled';

export interface FiveNumbers {
  task: string;
  metric: string;
  higherIsBetter: boolean;
  full_zero_shot: number;
  emulator_zero_shot: number;
  emulator_fine_tuned: number;
  plug_in: number;
  full_fine_tuned: number | null;
}

/** One data owner's tuning request, as stored and as the API returns it. */
export interface TuningRequest {
  id: string;
  tenant: string;
  baseModel: string;
  preset: PrivacyPreset;
  task: string;
  /** The cluster tunes the adapter on `task` itself (demo); otherwise the owner downloads, tunes and uploads. */
  managedTuning: boolean;
  tuneHyper: Partial<TrainHyperParameters>;
  status: RequestStatus;
  progress: { phase: RequestStatus; step?: number; totalSteps?: number; loss?: number; detail?: string };
  error?: string;
  createdAt: string;
  updatedAt: string;
  artifacts: { emulator?: string; adapter?: string; plugged?: string; report?: string };
  report?: FiveNumbers;
}

export interface CreateRequestBody {
  baseModel: string;
  preset: PrivacyPreset;
  task: string;
  managedTuning?: boolean;
  tuneHyper?: Partial<TrainHyperParameters>;
}

export interface CoordinatorOptions {
  storageDir: string;
  runner: JobRunner;
  /** Runs stage 1 of `modelDir` into `outDir` (distributed rounds or the single-process trainer). */
  stage1: (modelDir: string, outDir: string, onRound: (done: number, total: number) => void) => Promise<void>;
  /** Evaluation limits of every evaluate job (numbers; `maxBlocks`, `maxExamples`, `evalBatchSize`). Default none. */
  evalHyper?: Record<string, number>;
  /** Training settings of managed tuning and the full fine-tuning baseline when a request names none. */
  defaultTuneHyper?: Partial<TrainHyperParameters>;
  /** Run the full fine-tuning baseline (the report's fifth number). Default true. */
  fullFineTune?: boolean;
  /** N_a stage 1 runs with when a base model has no stage-1 artifacts yet. Default DEFAULT_STAGE1.nAdapter (4). */
  stage1AdapterBlocks?: number;
  /** Per-tenant limits. */
  quotas?: TenantQuotas;
  /** Finished (done, failed) requests are deleted this long after their last update. Default 7 days; 0 = keep forever. */
  retentionMs?: number;
  logger?: Logger;
}

export interface TenantQuotas {
  /** Requests of one tenant not yet done, failed or cancelled. Default 16. */
  maxActiveRequests?: number;
  /** Bytes one tenant may hold in storage (requests, artifacts, uploads). Default 20 GiB. */
  maxStorageBytes?: number;
}

const ACTIVE: RequestStatus[] = ['queued', 'stage1', 'building-emulator', 'emulator-ready', 'tuning', 'adapter-ready', 'plugging-in', 'evaluating'];
const FINISHED: RequestStatus[] = ['done', 'failed'];

/**
 * The coordinator's job graph per tuning request: stage 1 of the base model (once per model, shared by
 * every request), emulator build with the request's privacy preset, adapter tuning (managed) or an
 * uploaded adapter, plug-in, the five evaluations, the report. State lives in shared storage, one
 * directory per tenant; a restarted coordinator picks unfinished requests up where they were.
 */
export class Coordinator {
  private readonly events = new EventEmitter();
  private readonly stage1Runs = new Map<string, Promise<string>>();
  private readonly active = new Map<string, Promise<void>>();
  /** Requests being cancelled: their pipeline stops at its next step and writes nothing more. */
  private readonly cancelling = new Set<string>();
  private retentionTimer?: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(private readonly options: CoordinatorOptions) {
    this.log = options.logger ?? createLogger('coordinator');
    this.events.setMaxListeners(0);
  }

  get runnerMode(): JobRunner['mode'] {
    return this.options.runner.mode;
  }

  /** Resumes requests a previous coordinator left unfinished. */
  async start(): Promise<void> {
    const retention = this.options.retentionMs ?? 7 * 24 * 3600_000;
    if (retention > 0 && !this.retentionTimer) {
      await this.sweepRetention();
      this.retentionTimer = setInterval(() => void this.sweepRetention().catch((err: unknown) => this.log.warn({ err }, 'retention sweep failed')), Math.min(retention, 3600_000));
      this.retentionTimer.unref();
    }
    const root = join(this.options.storageDir, 'tenants');
    if (!existsSync(root)) return;
    for (const tenant of await readdir(root)) {
      const dir = join(root, tenant, 'requests');
      if (!existsSync(dir)) continue;
      for (const id of await readdir(dir)) {
        const request = await this.load(tenant, id).catch(() => undefined);
        if (!request) continue;
        // Managed requests move on by themselves from emulator-ready and adapter-ready too: a coordinator
        // that died between two steps must not leave them there.
        if (['queued', 'stage1', 'building-emulator', 'tuning'].includes(request.status) || (request.managedTuning && request.status === 'emulator-ready')) this.spawn(request, () => this.prepare(request));
        else if (['plugging-in', 'evaluating'].includes(request.status) || (request.managedTuning && request.status === 'adapter-ready')) this.spawn(request, () => this.finish(request));
      }
    }
  }

  async createRequest(tenant: string, body: CreateRequestBody): Promise<TuningRequest> {
    // The API's route schema already refused these; callers from code get the same contract.
    const valid = checkContract(createRequestSchema, body, 'tuning request');
    const p = valid.preset;
    await this.checkFeasible(valid);
    const active = (await this.listRequests(tenant)).filter((r) => ACTIVE.includes(r.status)).length;
    const maxActive = this.options.quotas?.maxActiveRequests ?? 16;
    if (active >= maxActive) throw new ClusterError('QUOTA_EXCEEDED', `this data owner has ${active} unfinished requests, the most allowed at once is ${maxActive}; wait for one to finish or cancel one (DELETE /v1/requests/:id)`, { where: 'tenant quota' });
    await this.checkStorageQuota(tenant, 0);
    const now = new Date().toISOString();
    const request: TuningRequest = {
      id: `req-${randomBytes(8).toString('hex')}`,
      tenant,
      baseModel: valid.baseModel,
      preset: { nAdapter: p.nAdapter, alpha: p.alpha, beta: p.beta },
      task: valid.task,
      managedTuning: valid.managedTuning ?? false,
      tuneHyper: { ...this.options.defaultTuneHyper, ...valid.tuneHyper } as Partial<TrainHyperParameters>,
      status: 'queued',
      progress: { phase: 'queued' },
      createdAt: now,
      updatedAt: now,
      artifacts: {},
    };
    await this.save(request);
    this.spawn(request, () => this.prepare(request));
    return request;
  }

  /**
   * Everything that would make the request fail later, refused now with UNPROCESSABLE naming the field:
   * the base model and the task exist, N_a leaves middle blocks in the model and covers stage 1's
   * adapter blocks (its harmonizers exist for the middle blocks only), the merged training schedule holds.
   */
  private async checkFeasible(body: { baseModel: string; task: string; preset: PrivacyPreset; tuneHyper?: object }): Promise<void> {
    const configPath = join(this.modelsDir, body.baseModel, 'config.json');
    if (!existsSync(configPath)) throw new ClusterError('UNPROCESSABLE', `no base model "${body.baseModel}" in the cluster's storage`, { where: 'baseModel' });
    if (!isBuiltinTask(body.task)) throw new ClusterError('UNPROCESSABLE', `"${body.task}" is not a built-in task`, { where: 'task' });
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { n_layer?: number; num_hidden_layers?: number };
    const nLayer = config.n_layer ?? config.num_hidden_layers;
    const nAdapter = body.preset.nAdapter;
    if (typeof nLayer === 'number' && nAdapter >= nLayer) {
      throw new ClusterError('UNPROCESSABLE', `N_a=${nAdapter} leaves no middle block in ${body.baseModel} (${nLayer} blocks); choose 1 ≤ N_a ≤ ${nLayer - 1}`, { where: 'preset.nAdapter' });
    }
    const stage1N = await this.stage1AdapterBlocks(body.baseModel);
    if (nAdapter < stage1N) {
      throw new ClusterError('UNPROCESSABLE', `stage 1 of ${body.baseModel} trained harmonizers for the middle blocks of N_a=${stage1N}; choose N_a ≥ ${stage1N}`, { where: 'preset.nAdapter' });
    }
    const merged = { ...this.options.defaultTuneHyper, ...body.tuneHyper };
    const issues = contractIssues(trainHyperSchema, merged);
    if (issues.length > 0) throw new ClusterError('UNPROCESSABLE', `with the cluster's defaults, tuneHyper.${issues[0].path} ${issues[0].message}`, { where: `tuneHyper.${issues[0].path}` });
  }

  /** N_a of the base model's stage 1: its artifacts' layout, or what it will run with. */
  private async stage1AdapterBlocks(baseModel: string): Promise<number> {
    const manifest = join(this.options.storageDir, 'stage1', baseModel, STAGE1_MANIFEST);
    if (existsSync(manifest)) {
      const parsed = JSON.parse(await readFile(manifest, 'utf8')) as { layout?: { nAdapter?: number } };
      if (typeof parsed.layout?.nAdapter === 'number') return parsed.layout.nAdapter;
    }
    return this.options.stage1AdapterBlocks ?? DEFAULT_STAGE1.nAdapter;
  }

  /** Bytes a tenant holds in storage. */
  async storageBytes(tenant: string): Promise<number> {
    return directoryBytes(this.tenantDir(tenant));
  }

  private async checkStorageQuota(tenant: string, adding: number): Promise<void> {
    const max = this.options.quotas?.maxStorageBytes ?? 20 * 2 ** 30;
    const used = await this.storageBytes(tenant);
    if (used + adding > max) {
      throw new ClusterError('QUOTA_EXCEEDED', `this data owner holds ${used} bytes; ${adding > 0 ? `${adding} more ` : ''}would pass the ${max}-byte storage quota; delete finished requests (DELETE /v1/requests/:id)`, { where: 'tenant quota' });
    }
  }

  /**
   * Cancels a request (any status): its queued jobs are removed, running ones signalled, its pipeline
   * stops, and its storage is freed. The request is gone afterwards (404).
   */
  async cancelRequest(tenant: string, id: string): Promise<{ id: string; status: 'cancelled'; previousStatus: RequestStatus; removedJobs: number; signalledJobs: number; freedBytes: number }> {
    const request = await this.getRequest(tenant, id);
    const key = `${tenant}/${id}`;
    this.cancelling.add(key);
    try {
      const jobs = await this.options.runner.cancelGroup(id);
      const running = this.active.get(key);
      if (running) await Promise.race([running, new Promise((r) => setTimeout(r, 5000).unref())]);
      const dir = this.requestDir(tenant, id);
      const freedBytes = await directoryBytes(dir);
      await rm(dir, { recursive: true, force: true });
      this.events.emit(key, { ...request, status: 'cancelled', progress: { phase: 'cancelled' } });
      this.log.info({ request: id, tenant, ...jobs, freedBytes }, 'request cancelled');
      return { id, status: 'cancelled', previousStatus: request.status, removedJobs: jobs.removed, signalledJobs: jobs.signalled, freedBytes };
    } finally {
      // The pipeline may still be unwinding; it finds the mark and writes nothing.
      setTimeout(() => this.cancelling.delete(key), 60_000).unref();
    }
  }

  /** Deletes finished requests last updated before `now - retentionMs`; returns their ids. */
  async sweepRetention(now = Date.now()): Promise<string[]> {
    const retention = this.options.retentionMs ?? 7 * 24 * 3600_000;
    if (retention <= 0) return [];
    const root = join(this.options.storageDir, 'tenants');
    if (!existsSync(root)) return [];
    const removed: string[] = [];
    for (const tenant of await readdir(root)) {
      for (const request of await this.listRequests(tenant).catch(() => [])) {
        if (FINISHED.includes(request.status) && now - Date.parse(request.updatedAt) > retention) {
          await rm(this.requestDir(tenant, request.id), { recursive: true, force: true });
          removed.push(request.id);
        }
      }
    }
    if (removed.length) this.log.info({ removed: removed.length }, 'retention: finished requests deleted');
    return removed;
  }

  /** Stops the retention timer. */
  stop(): void {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = undefined;
  }

  /** The request, if it belongs to `tenant`; otherwise NOT_FOUND (never revealing that it exists). */
  async getRequest(tenant: string, id: string): Promise<TuningRequest> {
    if (!ID.test(id)) throw notFound(id);
    const request = await this.load(tenant, id).catch(() => undefined);
    if (!request || request.tenant !== tenant) throw notFound(id);
    return request;
  }

  async listRequests(tenant: string): Promise<TuningRequest[]> {
    const dir = join(this.tenantDir(tenant), 'requests');
    if (!existsSync(dir)) return [];
    const out: TuningRequest[] = [];
    for (const id of await readdir(dir)) {
      const request = await this.load(tenant, id).catch(() => undefined);
      if (request) out.push(request);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Calls `listener` with every update of the request; returns the unsubscribe function. */
  subscribe(request: TuningRequest, listener: (request: TuningRequest) => void): () => void {
    const key = `${request.tenant}/${request.id}`;
    this.events.on(key, listener);
    return () => this.events.off(key, listener);
  }

  /** Files of an artifact of the request: `emulator` (with the untuned adapter blocks) or the tuned `adapter`. */
  async artifactFiles(tenant: string, id: string, artifact: 'emulator' | 'adapter'): Promise<{ name: string; path: string; size: number }[]> {
    const request = await this.getRequest(tenant, id);
    const dir = artifact === 'emulator' ? request.artifacts.emulator : request.artifacts.adapter;
    if (!dir || !existsSync(dir)) throw new ClusterError('CONFLICT', `the ${artifact} of ${id} is not ready (status ${request.status})`, { where: id });
    const out: { name: string; path: string; size: number }[] = [];
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const st = await stat(path);
      if (st.isFile()) out.push({ name, path, size: st.size });
    }
    return out;
  }

  /**
   * Stores the data owner's tuned adapter, validated before it replaces anything: a well-formed adapter
   * artifact, tuned on this request's emulator (the emulator fingerprint in its manifest), within the
   * tenant's storage quota. The staging directory is removed on every outcome.
   */
  async uploadAdapter(tenant: string, id: string, files: { name: string; data: Buffer }[]): Promise<TuningRequest> {
    const request = await this.getRequest(tenant, id);
    if (!['emulator-ready', 'adapter-ready', 'done', 'failed'].includes(request.status) || !request.artifacts.emulator) {
      throw new ClusterError('CONFLICT', `request ${id} is ${request.status}; upload an adapter once its emulator is ready`, { where: id });
    }
    const seen = new Set<string>();
    for (const f of files) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(f.name)) throw new ClusterError('BAD_UPLOAD', 'a file name in the archive is not allowed (letters, digits and . _ -, no directories)', { where: 'upload' });
      if (seen.has(f.name)) throw new ClusterError('BAD_UPLOAD', `the archive holds "${f.name}" twice`, { where: 'upload' });
      seen.add(f.name);
    }
    await this.checkStorageQuota(tenant, files.reduce((n, f) => n + f.data.length, 0));
    const staging = join(this.requestDir(tenant, id), `upload-${randomBytes(4).toString('hex')}`);
    try {
      await writeArtifactDir(staging, files.map((f) => ({ name: f.name, chunks: [f.data] })));
      let adapter: Awaited<ReturnType<typeof readAdapter>>;
      try {
        adapter = await readAdapter(staging);
      } catch (cause) {
        // The cause names files in the staging directory; the client sees file names only.
        // Quoted values come from the upload itself and are not echoed (constants such as "scaleot.adapter" are kept).
        const reason = (cause instanceof Error ? cause.message : String(cause))
          .split(`${staging}/`).join('').split(staging).join('upload')
          .replace(/"[^"]*"/g, (quoted) => (/^"[a-z0-9._]{1,40}"$/.test(quoted) ? quoted : '(value not shown)'));
        throw new ClusterError('BAD_UPLOAD', `not a valid adapter artifact: ${reason.slice(0, 400)}`, { where: 'upload', cause });
      }
      const emulator = await readManifest(request.artifacts.emulator, 'scaleot.emulator');
      const expected = emulatorFingerprint(emulator);
      const got = (adapter.manifest.parameters.emulator as { sha256?: unknown } | undefined)?.sha256;
      if (got !== expected) {
        throw new ClusterError(
          'ADAPTER_PROVENANCE_MISMATCH',
          got === undefined ? `the adapter's manifest does not say which emulator it was tuned on; tune it on this request's emulator (GET /v1/requests/${id}/emulator.tar)` : `the adapter was tuned on another emulator than this request's; tune it on GET /v1/requests/${id}/emulator.tar`,
          { where: 'adapter.json' },
        );
      }
      const adapterDir = join(this.requestDir(tenant, id), 'adapter');
      await writeArtifactDir(adapterDir, files.map((f) => ({ name: f.name, chunks: [f.data] })), { overwrite: true });
      request.artifacts.adapter = adapterDir;
      delete request.report;
      delete request.artifacts.report;
      return await this.update(request, { status: 'adapter-ready', progress: { phase: 'adapter-ready', detail: 'uploaded' } });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * Plugs the request's adapter into the full model and evaluates the five numbers (in the background).
   * Idempotent: on a request that is already plugging in, evaluating or done with this adapter, nothing
   * runs again and the request is returned as it is.
   */
  async requestPlugin(tenant: string, id: string): Promise<TuningRequest> {
    const request = await this.getRequest(tenant, id);
    if (['plugging-in', 'evaluating', 'done'].includes(request.status)) return request;
    if (request.status !== 'adapter-ready' && request.status !== 'failed') {
      throw new ClusterError('CONFLICT', `request ${id} is ${request.status}; plug-in needs a tuned or uploaded adapter`, { where: id });
    }
    if (!request.artifacts.adapter) throw new ClusterError('CONFLICT', `request ${id} has no adapter yet`, { where: id });
    const updated = await this.update(request, { status: 'plugging-in', progress: { phase: 'plugging-in' }, error: undefined });
    this.spawn(updated, () => this.finish(updated));
    return updated;
  }

  async report(tenant: string, id: string): Promise<{ report: FiveNumbers; markdown: string }> {
    const request = await this.getRequest(tenant, id);
    if (!request.report || !request.artifacts.report) throw new ClusterError('CONFLICT', `request ${id} has no report yet (status ${request.status})`, { where: id });
    return { report: request.report, markdown: await readFile(`${request.artifacts.report}.md`, 'utf8') };
  }

  /** Resolves once the request reached `status` (or failed: rejects). */
  waitFor(request: TuningRequest, status: RequestStatus, timeoutMs = 30 * 60_000): Promise<TuningRequest> {
    return new Promise((resolve, reject) => {
      const check = (r: TuningRequest) => {
        if (r.status === status) {
          done();
          resolve(r);
        } else if (r.status === 'failed') {
          done();
          reject(new ClusterError('PIPELINE_FAILED', `request ${r.id} failed: ${r.error}`, { where: r.id }));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new ClusterError('TIMEOUT', `request ${request.id} did not reach ${status} within ${timeoutMs} ms`, { where: request.id }));
      }, timeoutMs);
      const unsubscribe = this.subscribe(request, check);
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
      };
      void this.getRequest(request.tenant, request.id).then(check, () => undefined);
    });
  }

  /** Waits for every background step to settle (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active.values()]);
  }

  get modelsDir(): string {
    return join(this.options.storageDir, 'models');
  }

  /** Stage-1 artifacts of a base model (shared by all requests on it), running stage 1 once if needed. */
  ensureStage1(baseModel: string, onRound: (done: number, total: number) => void = () => undefined): Promise<string> {
    const outDir = join(this.options.storageDir, 'stage1', baseModel);
    if (existsSync(join(outDir, STAGE1_MANIFEST))) return Promise.resolve(outDir);
    let run = this.stage1Runs.get(baseModel);
    if (!run) {
      run = this.options.stage1(join(this.modelsDir, baseModel), outDir, onRound).then(() => outDir);
      run.catch(() => this.stage1Runs.delete(baseModel));
      this.stage1Runs.set(baseModel, run);
    }
    return run;
  }

  private spawn(request: TuningRequest, step: () => Promise<void>): void {
    const key = `${request.tenant}/${request.id}`;
    const run = step()
      .catch(async (error: unknown) => {
        if (this.cancelling.has(key)) return;
        const message = error instanceof Error ? error.message : String(error);
        // One job failed for good, so the request's other jobs (the evaluations beside it) compute
        // results nobody will read: stop them the way DELETE does, queued ones removed, running ones
        // signalled (their compute thread is terminated), before the request is marked failed.
        const siblings = await this.options.runner.cancelGroup(request.id).catch((err: unknown) => {
          this.log.warn({ request: request.id, err }, 'could not stop the sibling jobs of a failed request');
          return { removed: 0, signalled: 0 };
        });
        this.log.error({ request: request.id, tenant: request.tenant, err: error, removedJobs: siblings.removed, signalledJobs: siblings.signalled }, 'request failed');
        const stopped = siblings.removed + siblings.signalled;
        const latest = await this.load(request.tenant, request.id).catch(() => request);
        await this.update(latest, {
          status: 'failed',
          error: message,
          progress: { ...latest.progress, phase: 'failed', ...(stopped > 0 ? { detail: `${stopped} other job${stopped === 1 ? '' : 's'} of the request stopped` } : {}) },
        });
      })
      .finally(() => this.active.delete(key));
    this.active.set(key, run);
  }

  private async prepare(request: TuningRequest): Promise<void> {
    const { runner } = this.options;
    let r = await this.update(request, { status: 'stage1', progress: { phase: 'stage1' } });
    const stage1Dir = await this.ensureStage1(r.baseModel, (done, total) => void this.update(r, { progress: { phase: 'stage1', step: done, totalSteps: total } }).then((u) => (r = u), () => undefined));
    r = await this.update(r, { status: 'building-emulator', progress: { phase: 'building-emulator' } });
    const emulatorDir = join(this.requestDir(r.tenant, r.id), 'emulator');
    await runner.run('emulator.build', {
      tenant: r.tenant,
      emulatorId: `${r.id}-emulator`,
      model: join(this.modelsDir, r.baseModel),
      stage1: stage1Dir,
      adapterBlocks: r.preset.nAdapter,
      alpha: r.preset.alpha,
      beta: r.preset.beta,
      output: emulatorDir,
    }, { group: r.id });
    r.artifacts.emulator = emulatorDir;
    r = await this.update(r, { status: 'emulator-ready', progress: { phase: 'emulator-ready' } });
    if (!r.managedTuning) return;
    r = await this.update(r, { status: 'tuning', progress: { phase: 'tuning' } });
    const adapterDir = join(this.requestDir(r.tenant, r.id), 'adapter');
    await runner.run(
      'tune',
      { tenant: r.tenant, tuneId: `${r.id}-tune`, emulator: emulatorDir, task: r.task, output: adapterDir, hyper: { ...r.tuneHyper } as Record<string, number> },
      { group: r.id, onProgress: (value) => void this.progressOnly(r, { phase: 'tuning', ...(value as object) }) },
    );
    r.artifacts.adapter = adapterDir;
    r = await this.update(r, { status: 'adapter-ready', progress: { phase: 'adapter-ready', detail: 'tuned by the cluster' } });
    await this.finish(r);
  }

  private async finish(request: TuningRequest): Promise<void> {
    const { runner } = this.options;
    const dir = this.requestDir(request.tenant, request.id);
    const model = join(this.modelsDir, request.baseModel);
    let r = await this.update(request, { status: 'plugging-in', progress: { phase: 'plugging-in' } });
    const plugged = join(dir, 'plugged');
    await runner.run('plugin', { tenant: r.tenant, pluginId: `${r.id}-plugin`, model, adapters: r.artifacts.adapter!, output: plugged }, { group: r.id });
    r.artifacts.plugged = plugged;
    r = await this.update(r, { status: 'evaluating', progress: { phase: 'evaluating' } });
    const evalHyper = { ...this.options.evalHyper };
    const evaluation = (name: string, target: string, extra: Record<string, number | string | boolean> = {}) =>
      runner.run<EvaluateJobResult>('evaluate', { tenant: r.tenant, evaluationId: `${r.id}-${name}`, model: target, task: r.task, output: join(dir, 'eval', `${name}.json`), hyper: { ...evalHyper, ...extra } }, { group: r.id });
    const fft = this.options.fullFineTune ?? true;
    const [fullZero, emuZero, emuTuned, plug, full] = await Promise.all([
      evaluation('full-zero-shot', model),
      evaluation('emulator-zero-shot', r.artifacts.emulator!),
      evaluation('emulator-fine-tuned', r.artifacts.emulator!, { adapter: r.artifacts.adapter! }),
      evaluation('plug-in', plugged),
      fft ? evaluation('full-fine-tuned', model, { fullFineTune: true, ...(r.tuneHyper as Record<string, number>) }) : Promise.resolve(null),
    ]);
    const report: FiveNumbers = {
      task: r.task,
      metric: fullZero.metric,
      higherIsBetter: fullZero.metric === 'accuracy',
      full_zero_shot: fullZero.value,
      emulator_zero_shot: emuZero.value,
      emulator_fine_tuned: emuTuned.value,
      plug_in: plug.value,
      full_fine_tuned: full?.value ?? null,
    };
    const reportPath = join(dir, 'report');
    await atomicWriteJson(`${reportPath}.json`, { request: r.id, preset: r.preset, baseModel: r.baseModel, ...report });
    await atomicWriteFile(`${reportPath}.md`, renderFiveNumbers(r, report));
    r.artifacts.report = reportPath;
    await this.update(r, { status: 'done', report, progress: { phase: 'done' } });
  }

  private async progressOnly(request: TuningRequest, progress: TuningRequest['progress']): Promise<void> {
    request.progress = progress;
    request.updatedAt = new Date().toISOString();
    this.events.emit(`${request.tenant}/${request.id}`, { ...request });
  }

  private async update(request: TuningRequest, changes: Partial<TuningRequest>): Promise<TuningRequest> {
    Object.assign(request, changes, { updatedAt: new Date().toISOString() });
    if ('error' in changes && changes.error === undefined) delete request.error;
    await this.save(request);
    this.events.emit(`${request.tenant}/${request.id}`, { ...request });
    return request;
  }

  private tenantDir(tenant: string): string {
    if (!ID.test(tenant)) throw new ClusterError('FORBIDDEN', `bad tenant id "${tenant}"`, { where: 'tenant' });
    return join(this.options.storageDir, 'tenants', tenant);
  }

  private requestDir(tenant: string, id: string): string {
    return join(this.tenantDir(tenant), 'requests', id);
  }

  private async save(request: TuningRequest): Promise<void> {
    if (this.cancelling.has(`${request.tenant}/${request.id}`)) throw new ClusterError('CANCELLED', `request ${request.id} was cancelled`, { where: request.id });
    await mkdir(this.requestDir(request.tenant, request.id), { recursive: true });
    await atomicWriteJson(join(this.requestDir(request.tenant, request.id), 'request.json'), request);
  }

  private async load(tenant: string, id: string): Promise<TuningRequest> {
    return JSON.parse(await readFile(join(this.requestDir(tenant, id), 'request.json'), 'utf8')) as TuningRequest;
  }
}

/** Bytes of the regular files under `dir` (links not followed; 0 when it does not exist). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    if (st.isFile()) total += st.size;
    else if (st.isDirectory()) for (const entry of await readdir(path)) await walk(join(path, entry));
  };
  await walk(dir);
  return total;
}

function notFound(id: string): ClusterError {
  return new ClusterError('NOT_FOUND', `no tuning request "${id}" for this data owner`, { where: 'request' });
}

export function renderFiveNumbers(request: Pick<TuningRequest, 'id' | 'baseModel' | 'preset'>, r: FiveNumbers): string {
  const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(r.metric === 'accuracy' ? 4 : 2));
  return [
    `# ${r.task}: ${request.baseModel}, preset N_a=${request.preset.nAdapter} α=${request.preset.alpha} β=${request.preset.beta}`,
    '',
    `| number | ${r.metric} (${r.higherIsBetter ? 'higher' : 'lower'} is better) |`,
    '|---|---|',
    `| full zero-shot | ${fmt(r.full_zero_shot)} |`,
    `| emulator zero-shot | ${fmt(r.emulator_zero_shot)} |`,
    `| emulator fine-tuned | ${fmt(r.emulator_fine_tuned)} |`,
    `| plug-in | ${fmt(r.plug_in)} |`,
    `| full fine-tuning | ${fmt(r.full_fine_tuned)} |`,
    '',
  ].join('\n');
}
