import { createLogger, type Logger } from '@scaleot/core';
import { createMetrics, startMetricsServer, type MetricsServer, type ScaleotMetrics } from '@scaleot/metrics';
import { JobQueue, JobWorker, type JobHandlers } from '@scaleot/queue';
import type { ResultSenderOptions } from '@scaleot/transport';
import { redisConnectionOf, type ClusterConfig } from './clusterConfig.js';
import { ComputeExecutor } from '@scaleot/model';
import { pipelineHandlers } from './pipelineHandlers.js';
import { Stage1WorkerRuntime } from './Stage1WorkerRuntime.js';

export interface ClusterWorkerOptions {
  config: ClusterConfig;
  /** Queue served. Default `scaleot`. */
  queueName?: string;
  /** Extra or replacement handlers (tests). */
  handlers?: JobHandlers;
  /** Result-delivery settings (tests inject `beforeSend`). */
  sender?: Pick<ResultSenderOptions, 'ackTimeoutMs' | 'attempts' | 'beforeSend'>;
  /** Where job compute runs. Default: a new ComputeExecutor with one thread per concurrent job (SCALEOT_WORKER_CONCURRENCY), closed with the worker. */
  compute?: ComputeExecutor;
  /** Start the /healthz /readyz /metrics server. Default true. */
  serveMetrics?: boolean;
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
  private constructor(
    readonly worker: JobWorker,
    readonly runtime: Stage1WorkerRuntime,
    readonly compute: ComputeExecutor,
    private readonly queue: JobQueue,
    metrics: ScaleotMetrics,
    private readonly log: Logger,
    private server: MetricsServer | undefined,
    private readonly state: { ready: boolean; draining: boolean; jobs: number },
  ) {
    this.metrics = metrics;
  }

  static async start(options: ClusterWorkerOptions): Promise<ClusterWorker> {
    const { config } = options;
    const log = options.logger ?? createLogger('worker');
    const metrics = createMetrics({ defaultLabels: { service: 'worker', worker_group: config.workerGroup } });
    const connection = redisConnectionOf(config);
    const queueName = options.queueName ?? 'scaleot';
    // One compute thread per worker: every job's compute runs there (the base model is loaded once,
    // in that thread), so this thread's event loop keeps renewing locks and answering /healthz.
    const compute = options.compute ?? new ComputeExecutor({ concurrency: config.workerConcurrency, logger: log });
    const runtime = new Stage1WorkerRuntime({
      compute,
      storageDir: config.storageDir,
      defaultParamsAddress: `tcp://${config.coordinatorHost}:${config.paramsPort}`,
      curve: config.curvePublicKey ? { serverPublicKey: config.curvePublicKey } : undefined,
      sender: options.sender,
      onTransfer: (direction, bytes) => metrics.transferBytes.inc({ direction }, bytes),
      logger: log,
    });
    const state = { ready: false, draining: false, jobs: 0 };
    const worker = new JobWorker({
      queue: queueName,
      prefix: config.queuePrefix,
      connection,
      concurrency: config.workerConcurrency,
      lockDurationMs: config.jobLockMs,
      stalledIntervalMs: config.stalledIntervalMs,
      logger: log,
      handlers: { ...runtime.handlers(), ...pipelineHandlers({ storageDir: config.storageDir, compute, logger: log }), ...options.handlers },
    });
    const observe = (kind: string, outcome: string, job?: { processedOn?: number; finishedOn?: number }) => {
      if (job?.processedOn) metrics.jobDuration.observe({ queue: queueName, kind, outcome }, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000);
    };
    worker.on('completed', (job) => {
      observe(job.name, 'completed', job);
      log.info({ job: job.id, kind: job.name, pid: process.pid, attempts: job.attemptsMade }, 'job completed');
    });
    worker.on('failed', (job, error, willRetry) => {
      observe(job?.name ?? 'unknown', willRetry ? 'retried' : 'failed', job);
      log.warn({ job: job?.id, kind: job?.name, willRetry, reason: error.message }, 'job failed');
    });
    const queue = new JobQueue({ name: queueName, prefix: config.queuePrefix, connection });
    metrics.trackQueue(queue.queue);
    const self = new ClusterWorker(worker, runtime, compute, queue, metrics, log, undefined, state);
    if (options.serveMetrics ?? true) {
      self.server = await startMetricsServer({
        port: config.metricsPort,
        registry: metrics.registry,
        health: () => ({ live: true, ready: state.ready && !state.draining, details: { queue: queueName, group: config.workerGroup, draining: state.draining, models: runtime.models, computing: compute.busy } }),
      });
    }
    await worker.waitUntilReady();
    state.ready = true;
    log.info({ queue: queueName, prefix: config.queuePrefix, pid: process.pid, metrics: self.server?.url }, 'worker ready');
    return self;
  }

  get metricsUrl(): string | undefined {
    return this.server?.url;
  }

  /** Stops taking jobs, lets the running ones finish (results recorded), then frees everything. */
  async close(): Promise<void> {
    this.state.draining = true;
    await this.worker.close();
    await this.runtime.close();
    await this.compute.close();
    await this.queue.close();
    await this.server?.close();
    this.log.info({ pid: process.pid }, 'worker closed');
  }
}
