import { createLogger, type Logger } from '@scaleot/core';
import { createMetrics, startMetricsServer, type MetricsServer, type ScaleotMetrics } from '@scaleot/metrics';
import { JobQueue, JobWorker, type JobHandler, type JobHandlers, type JobKind } from '@scaleot/queue';
import type { ResultSenderOptions } from '@scaleot/transport';
import { redisConnectionOf, type ClusterConfig } from './clusterConfig.js';
import { ComputeExecutor, workerMemoryBytes } from '@scaleot/model';
import { ConcurrencyGate } from './ConcurrencyGate.js';
import { pipelineHandlers } from './pipelineHandlers.js';
import { Stage1WorkerRuntime } from './Stage1WorkerRuntime.js';
import { WorkerRegistry } from './WorkerRegistry.js';

export interface ClusterWorkerOptions {
  config: ClusterConfig;
  /** Queue served. Default `scaleot`. */
  queueName?: string;
  /** Queues served (SCALEOT_QUEUE_NAMES: the chart gives each worker group its own). Default `[queueName]`. */
  queueNames?: string[];
  /** Where job compute runs. Default: a new ComputeExecutor with one thread per concurrent job (SCALEOT_WORKER_CONCURRENCY), closed with the worker. */
  compute?: ComputeExecutor;
  /** Extra or replacement handlers (tests). */
  handlers?: JobHandlers;
  /** Result-delivery settings (tests inject `beforeSend`). */
  sender?: Pick<ResultSenderOptions, 'ackTimeoutMs' | 'attempts' | 'beforeSend'>;
  /** Start the /healthz /readyz /metrics server. Default true. */
  serveMetrics?: boolean;
  /** Report this worker and its memory budget (`workerMemoryBytes()`) in the worker registry while it runs. Default true. */
  register?: boolean;
  /** Registry entry lifetime without a refresh, ms. Default 30 000 (WorkerRegistry's). */
  registryTtlMs?: number;
  logger?: Logger;
}

/**
 * One worker process' wiring: a BullMQ worker over every job kind of the pipeline (stage-1 shards and
 * rollouts, emulator builds, tuning, plug-in, evaluation), one model cache (each base model loaded once
 * from shared storage), and the metrics/health server. `close()` drains: the running job finishes and
 * its result is recorded, no new job starts.
 */
export class ClusterWorker {
  readonly metrics: ScaleotMetrics;
  /** The BullMQ worker of the first queue (`workers` has one per queue). */
  readonly worker: JobWorker;
  private constructor(
    readonly workers: JobWorker[],
    readonly runtime: Stage1WorkerRuntime,
    readonly compute: ComputeExecutor,
    private readonly queues: JobQueue[],
    metrics: ScaleotMetrics,
    private readonly log: Logger,
    private server: MetricsServer | undefined,
    private readonly state: { ready: boolean; draining: boolean; jobs: number },
    private registry?: WorkerRegistry,
  ) {
    this.metrics = metrics;
    this.worker = workers[0];
  }

  static async start(options: ClusterWorkerOptions): Promise<ClusterWorker> {
    const { config } = options;
    const log = options.logger ?? createLogger('worker');
    const metrics = createMetrics({ defaultLabels: { service: 'worker', worker_group: config.workerGroup } });
    const connection = redisConnectionOf(config);
    const queueNames = options.queueNames?.length ? options.queueNames : [options.queueName ?? 'scaleot'];
    // Compute threads (one per concurrent job): every job's compute runs there (the base model is loaded
    // once, in the thread), so this thread's event loop keeps renewing locks and answering /healthz.
    const compute = options.compute ?? new ComputeExecutor({ concurrency: config.workerConcurrency, logger: log });
    const runtime = new Stage1WorkerRuntime({
      compute,
      storageDir: config.storageDir,
      defaultParamsAddress: `tcp://${config.coordinatorHost}:${config.paramsPort}`,
      curve: config.curvePublicKey
        ? { serverPublicKey: config.curvePublicKey, ...(config.curveClientPublicKey && config.curveClientSecretKey ? { publicKey: config.curveClientPublicKey, secretKey: config.curveClientSecretKey } : {}) }
        : undefined,
      sender: options.sender,
      onTransfer: (direction, bytes) => metrics.transferBytes.inc({ direction }, bytes),
      logger: log,
    });
    const state = { ready: false, draining: false, jobs: 0 };
    const handlers: JobHandlers = { ...runtime.handlers(), ...pipelineHandlers({ storageDir: config.storageDir, compute, advertiseHost: config.advertiseHost, logger: log }), ...options.handlers };
    // Several queues: one BullMQ worker each, one gate so the process still runs `concurrency` jobs in all.
    const gate = queueNames.length > 1 ? new ConcurrencyGate(config.workerConcurrency) : undefined;
    const gated: JobHandlers = gate
      ? Object.fromEntries(Object.entries(handlers).map(([kind, handler]) => [kind, ((payload, context) => gate.run(() => (handler as JobHandler<JobKind>)(payload, context))) as JobHandler<JobKind>]))
      : handlers;
    const workers = queueNames.map(
      (queueName) =>
        new JobWorker({
          queue: queueName,
          prefix: config.queuePrefix,
          connection,
          concurrency: config.workerConcurrency,
          lockDurationMs: config.jobLockMs,
          stalledIntervalMs: config.stalledIntervalMs,
          logger: log,
          handlers: gated,
        }),
    );
    const observe = (queueName: string, kind: string, outcome: string, job?: { processedOn?: number; finishedOn?: number }) => {
      if (job?.processedOn) metrics.jobDuration.observe({ queue: queueName, kind, outcome }, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000);
    };
    for (const worker of workers) {
      worker.on('completed', (job) => {
        observe(worker.queueName, job.name, 'completed', job);
        log.info({ job: job.id, kind: job.name, queue: worker.queueName, pid: process.pid, attempts: job.attemptsMade }, 'job completed');
      });
      worker.on('failed', (job, error, willRetry) => {
        observe(worker.queueName, job?.name ?? 'unknown', willRetry ? 'retried' : 'failed', job);
        log.warn({ job: job?.id, kind: job?.name, queue: worker.queueName, willRetry, reason: error.message }, 'job failed');
      });
    }
    const queues = queueNames.map((name) => new JobQueue({ name, prefix: config.queuePrefix, connection }));
    for (const queue of queues) metrics.trackQueue(queue.queue);
    const self = new ClusterWorker(workers, runtime, compute, queues, metrics, log, undefined, state);
    if (options.serveMetrics ?? true) {
      self.server = await startMetricsServer({
        port: config.metricsPort,
        registry: metrics.registry,
        health: () => ({ live: true, ready: state.ready && !state.draining, details: { queues: queueNames, group: config.workerGroup, draining: state.draining, models: runtime.models, computing: compute.busy } }),
      });
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    // The coordinator plans stage 1 (data-parallel or pipeline stages) from the budgets workers report.
    const memoryBytes = (options.register ?? true) ? workerMemoryBytes() : undefined;
    if (memoryBytes !== undefined) {
      self.registry = new WorkerRegistry({ connection, prefix: config.queuePrefix, ttlMs: options.registryTtlMs, logger: log });
      await self.registry.register({ id: WorkerRegistry.workerId(), memoryBytes, queues: queueNames, group: config.workerGroup, host: config.advertiseHost, pid: process.pid });
    }
    state.ready = true;
    log.info({ queues: queueNames, prefix: config.queuePrefix, pid: process.pid, metrics: self.server?.url, memoryBytes }, 'worker ready');
    return self;
  }

  get metricsUrl(): string | undefined {
    return this.server?.url;
  }

  /** Stops taking jobs, lets the running ones finish (results recorded), then frees everything. */
  async close(): Promise<void> {
    this.state.draining = true;
    // Out of the registry first: a draining worker takes no stage of the next plan.
    await this.registry?.close();
    await Promise.all(this.workers.map((w) => w.close()));
    await this.runtime.close();
    await this.compute.close();
    await Promise.all(this.queues.map((q) => q.close()));
    await this.server?.close();
    this.log.info({ pid: process.pid }, 'worker closed');
  }
}
