import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { atomicWriteJson, createLogger, type Logger } from '@scaleot/core';
import type { TrainHyperParameters } from '@scaleot/offsite';
import { JobQueue } from '@scaleot/queue';
import { ComputeExecutor, computeThreads } from '@scaleot/model';
import { readStage1, runStage1, type Stage1HyperParameters, type Stage1StepLog } from '@scaleot/scaleot';
import { readModelConfig } from '@scaleot/model';
import { ClusterError } from './ClusterError.js';
import { Coordinator, renderFiveNumbers, type FiveNumbers, type PrivacyPreset, type TuningRequest } from './Coordinator.js';
import { freePort, spawnApp, stopApp, uniqueQueuePrefix, type ManagedProcess } from './LocalCluster.js';
import { LocalJobRunner } from './LocalJobRunner.js';
import { pipelineHandlers } from './pipelineHandlers.js';
import { writeDemoReport } from './writeDemoReport.js';
import { redisReachable } from './redisReachable.js';

export interface PipelineOptions {
  /** Everything goes here: storage/, reports, plots. */
  outDir: string;
  /** Redis URL of the cluster mode; `false` forces in-process. Default `redis://127.0.0.1:6379`. */
  redis?: string | false;
  /** The full model (HF dir). Default: the bundled models/sotu-gpt2-tiny. */
  modelDir?: string;
  /** Data root of the built-in tasks. Default: the repository's data/. */
  dataRoot?: string;
  /** The two (or more) emulators' privacy presets. Default: (4, 0.5, 0) and (4, 0.75, 0.5); N_a = 2 for models of fewer than 8 blocks. */
  presets?: PrivacyPreset[];
  /** The data owner's task. Default 'moby'. */
  task?: string;
  /** Stage-1 settings. Defaults: a short run sized for a laptop (see DEMO_STAGE1). */
  stage1?: Partial<Stage1HyperParameters>;
  /** Stage-1 corpus (model owner's public data). Default 'sotu', first `maxDocuments` documents. */
  corpus?: string;
  maxDocuments?: number;
  /** Adapter tuning and the full fine-tuning baseline. Defaults: DEMO_TUNE. */
  tune?: Partial<TrainHyperParameters>;
  /** Evaluation limits (maxBlocks, maxExamples, evalBatchSize). Default DEMO_EVAL. */
  eval?: Record<string, number>;
  /** Compute the full fine-tuning baseline. Default true. */
  fullFineTune?: boolean;
  /** Worker processes in cluster mode. Default 2. */
  workers?: number;
  /** Stage-1 shards per round in cluster mode. Default = workers. */
  shards?: number;
  /** Data-owner tenant of the demo. Default 'moby-owner'. */
  tenant?: string;
  logger?: Logger;
  /** Status lines for a CLI (`request ...: tuning`), also logged. */
  onEvent?: (message: string) => void;
  /** Step progress of each request's running phase (stage-1 rounds, tuning steps), for a live bar. */
  onProgress?: (progress: { label: string; step: number; total: number; loss?: number; ended?: boolean }) => void;
}

export interface PipelineResult {
  mode: 'cluster' | 'in-process';
  /** Why in-process (Redis unreachable), when it is. */
  reason?: string;
  outDir: string;
  stage1Dir: string;
  scores: number[];
  reports: { preset: PrivacyPreset; request: string; report: FiveNumbers; markdown: string }[];
  /** report.md and report.json over all presets. */
  reportFile: string;
  /** report.html: the same report, self-contained with the charts inline. */
  htmlFile: string;
  plots: string[];
  seconds: number;
}

export const DEMO_STAGE1: Partial<Stage1HyperParameters> = { nAdapter: 4, rank: 32, steps: 16, batchSize: 8, microBatchSize: 4, seqLen: 64, rlBatchSize: 4, candidates: 3, warmupSteps: 2, lr: 2e-3, eta: 0.05, seed: 0 };
export const DEMO_TUNE: Partial<TrainHyperParameters> = { steps: 24, batchSize: 8, microBatchSize: 4, seqLen: 64, lr: 1e-3, warmupSteps: 2, seed: 0 };
export const DEMO_EVAL: Record<string, number> = { maxBlocks: 24, evalBatchSize: 8 };
export const DEMO_PRESETS: PrivacyPreset[] = [
  { nAdapter: 4, alpha: 0.5, beta: 0 },
  { nAdapter: 4, alpha: 0.75, beta: 0.5 },
];

const REPO_ROOT = resolve(import.meta.dirname, '../../..');

/**
 * The whole pipeline as one job graph: stage 1 on the model owner's corpus, two emulators of different
 * privacy, a data owner tuning on Moby-Dick (managed tuning through the API), plug-in, the five-number
 * reports and the plots. With Redis reachable it spawns a local coordinator and `workers` worker
 * processes and drives them through the HTTP API like a data owner would; otherwise it runs the same
 * job handlers in this process (and says so in `mode`/`reason`).
 */
export async function runPipeline(options: PipelineOptions): Promise<PipelineResult> {
  const started = performance.now();
  const log = options.logger ?? createLogger('pipeline');
  const say = (message: string) => {
    options.onEvent?.(message);
    log.info(message);
  };
  // A line when a request's status changes; its steps go to the live bar (and debug logs).
  const lastStatus = new Map<string, string>();
  const barOf = new Map<string, { label: string; step: number; total: number }>();
  const report = (r: TuningRequest) => {
    if (lastStatus.get(r.id) !== r.status) {
      // The phase that had a bar is over (its last step may never be reported): end the bar.
      const bar = barOf.get(r.id);
      if (bar) options.onProgress?.({ ...bar, ended: true });
      barOf.delete(r.id);
      say(`request ${r.id}: ${r.status}`);
    }
    lastStatus.set(r.id, r.status);
    const { step, totalSteps, loss } = r.progress ?? {};
    if (step !== undefined && totalSteps) {
      log.debug({ request: r.id, status: r.status, step, totalSteps, loss }, `request ${r.id}: ${r.status} ${step}/${totalSteps}`);
      barOf.set(r.id, { label: `${r.id} ${r.status}`, step, total: totalSteps });
      options.onProgress?.({ label: `${r.id} ${r.status}`, step, total: totalSteps, loss });
    }
  };
  const outDir = resolve(options.outDir);
  const storage = join(outDir, 'storage');
  const modelDir = resolve(options.modelDir ?? join(REPO_ROOT, 'models/sotu-gpt2-tiny'));
  const dataRoot = resolve(options.dataRoot ?? join(REPO_ROOT, 'data'));
  const baseModel = basename(modelDir);
  await mkdir(join(storage, 'models'), { recursive: true });
  if (!existsSync(join(storage, 'models', baseModel))) await symlink(modelDir, join(storage, 'models', baseModel), 'dir');
  if (!existsSync(join(storage, 'data'))) await symlink(dataRoot, join(storage, 'data'), 'dir');
  // The demo's N_a of 4 leaves too few middle blocks in a small model (the families' 4-block fixtures).
  const nAdapter = (await readModelConfig(modelDir)).nLayer < 8 ? 2 : (DEMO_STAGE1.nAdapter ?? 4);
  const presets = options.presets ?? DEMO_PRESETS.map((p) => ({ ...p, nAdapter }));
  const task = options.task ?? 'moby';
  const stage1Hyper = { ...DEMO_STAGE1, nAdapter, ...options.stage1 };
  const tune = { ...DEMO_TUNE, ...options.tune };
  const evalHyper = { ...DEMO_EVAL, ...options.eval };
  const fullFineTune = options.fullFineTune ?? true;
  const corpus = options.corpus ?? 'sotu';
  const maxDocuments = options.maxDocuments ?? 40;
  const tenant = options.tenant ?? 'moby-owner';

  let mode: PipelineResult['mode'] = 'in-process';
  let reason: string | undefined;
  if (options.redis === false) reason = 'in-process mode was asked for';
  else {
    const url = options.redis ?? 'redis://127.0.0.1:6379';
    const reach = await redisReachable(url);
    if (reach.ok) mode = 'cluster';
    else reason = `Redis at ${url} is unreachable (${reach.reason}); running the same job handlers in this process`;
  }
  if (reason) say(`in-process: ${reason}`);

  let requests: TuningRequest[];
  if (mode === 'cluster') {
    requests = await viaCluster();
  } else {
    requests = await inProcess();
  }

  const stage1Dir = join(storage, 'stage1', baseModel);
  const stage1 = await readStage1(stage1Dir);
  const stage1Log = (await readFile(join(stage1Dir, 'stage1-log.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Stage1StepLog);
  const reports = requests.map((r) => ({ preset: r.preset, request: r.id, report: r.report!, markdown: renderFiveNumbers(r, r.report!) }));
  const { reportFile, htmlFile, plots } = await writeDemoReport({
    outDir,
    mode,
    reason,
    task,
    baseModel,
    modelDir,
    dataRoot,
    reports,
    stage1: { scores: stage1.scores, importance: stage1.importance, log: stage1Log, hyper: stage1Hyper },
    tune,
    evalHyper,
    fullFineTune,
  });
  say(`done in ${((performance.now() - started) / 1000).toFixed(0)} s: ${reportFile}`);
  return { mode, reason, outDir, stage1Dir, scores: stage1.scores, reports, reportFile, htmlFile, plots, seconds: (performance.now() - started) / 1000 };

  async function inProcess(): Promise<TuningRequest[]> {
    const compute = new ComputeExecutor({ logger: log });
    const handlers = pipelineHandlers({ storageDir: storage, dataRoot, compute, logger: log });
    const coordinator = new Coordinator({
      storageDir: storage,
      runner: new LocalJobRunner(handlers),
      stage1: async (model, out) => {
        if (existsSync(join(out, 'manifest.json'))) return;
        say('stage 1 (single-process trainer)');
        await runStage1({ modelDir: model, outDir: out, corpus, dataRoot, maxDocuments, ...stage1Hyper, overwrite: true, onStep: (e) => log.info({ label: 'stage1', done: e.step, total: stage1Hyper.steps, unit: 'step', loss: e.loss }, `stage1 ${e.step}/${stage1Hyper.steps}`) });
      },
      defaultTuneHyper: tune,
      evalHyper,
      fullFineTune,
      logger: log,
    });
    // Stage 1 once, then the requests one after the other (one tfjs engine in this process).
    await coordinator.ensureStage1(baseModel);
    const done: TuningRequest[] = [];
    for (const preset of presets) {
      const request = await coordinator.createRequest(tenant, { baseModel, preset, task, managedTuning: true });
      say(`request ${request.id}: preset N_a=${preset.nAdapter} α=${preset.alpha} β=${preset.beta}`);
      const unsubscribe = coordinator.subscribe(request, (r) => report(r));
      try {
        done.push(await coordinator.waitFor(request, 'done'));
      } finally {
        unsubscribe();
      }
    }
    await compute.close();
    return done;
  }

  async function viaCluster(): Promise<TuningRequest[]> {
    const redisUrl = options.redis || 'redis://127.0.0.1:6379';
    const prefix = uniqueQueuePrefix('demo');
    const token = randomBytes(24).toString('hex');
    const tokensFile = join(outDir, 'api-tokens.json');
    // Bearer tokens: readable by this user only.
    await atomicWriteJson(tokensFile, { [tenant]: token }, { mode: 0o600 });
    const configFile = join(outDir, 'coordinator-config.json');
    const workers = options.workers ?? 2;
    await atomicWriteJson(configFile, { stage1: stage1Hyper, shards: options.shards ?? workers, corpus, dataRoot, maxDocuments, tune, eval: evalHyper, fullFineTune });
    const [httpPort, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      SCALEOT_REDIS_URL: redisUrl,
      SCALEOT_QUEUE_PREFIX: prefix,
      SCALEOT_STORAGE_DIR: storage,
      SCALEOT_COORDINATOR_HOST: '127.0.0.1',
      SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort),
      SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort),
      // Info at least: readiness is read from the children's log lines.
      SCALEOT_LOG_LEVEL: 'info',
    };
    const processes: ManagedProcess[] = [];
    try {
      const coordinator = spawnApp('coordinator', 'coordinator', { ...env, SCALEOT_HTTP_PORT: String(httpPort), SCALEOT_HTTP_HOST: '127.0.0.1', SCALEOT_API_TOKENS_FILE: tokensFile, SCALEOT_COORDINATOR_CONFIG: configFile }, log);
      processes.push(coordinator);
      // The workers share this machine's cores: each job gets its share, not all of them.
      const threadsPerWorker = String(Math.max(1, Math.floor(computeThreads() / workers)));
      for (let i = 0; i < workers; i++) processes.push(spawnApp('worker', `worker-${i + 1}`, { ...env, SCALEOT_METRICS_PORT: '0', SCALEOT_WORKER_GROUP: 'cpu', SCALEOT_THREADS: threadsPerWorker }, log));
      await Promise.all(processes.map((p) => p.waitForLog(p.name === 'coordinator' ? 'coordinator ready' : 'worker ready')));
      say(`cluster: coordinator on http://127.0.0.1:${httpPort} + ${workers} workers (queue prefix ${prefix})`);
      const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
        const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        if (!res.ok) throw new ClusterError('PIPELINE_FAILED', `${method} ${path}: HTTP ${res.status} ${await res.text()}`, { where: path });
        return (await res.json()) as T;
      };
      const created: TuningRequest[] = [];
      for (const preset of presets) {
        const r = await api<TuningRequest>('POST', '/v1/requests', { baseModel, preset, task, managedTuning: true });
        say(`request ${r.id}: preset N_a=${preset.nAdapter} α=${preset.alpha} β=${preset.beta}`);
        created.push(r);
      }
      for (;;) {
        const current = await Promise.all(created.map((r) => api<TuningRequest>('GET', `/v1/requests/${r.id}`)));
        for (const r of current) {
          report(r);
          if (r.status === 'failed') throw new ClusterError('PIPELINE_FAILED', `request ${r.id} failed: ${r.error}`, { where: r.id });
        }
        if (current.every((r) => r.status === 'done')) return current;
        await new Promise((res) => setTimeout(res, 1000));
      }
    } finally {
      await Promise.all(processes.map((p) => stopApp(p)));
      for (const name of ['scaleot', 'scaleot-control']) {
        const queue = new JobQueue({ name, connection: redisUrl, prefix });
        await queue.obliterate().catch(() => undefined);
        await queue.close();
      }
    }
  }
}
