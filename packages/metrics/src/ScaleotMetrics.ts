import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createLogger, type Logger } from '@scaleot/core';
import { collectQueueMetrics, type QueueLike } from './collectQueueMetrics.js';

/** Options of {@link createMetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Labels added to every series, e.g. `{ service: 'worker', worker_group: 'gpu' }`. Default: none. */
  defaultLabels?: Record<string, string>;
  /** Collect prom-client's default process metrics (CPU, memory, event loop lag, GC). Default: true. */
  processMetrics?: boolean;
}

/** Job durations span seconds (evaluation) to hours (stage-2 fine-tuning of a large model). */
const JOB_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200];
/** One stage-1 round = broadcast params, local steps on every worker, collect and aggregate. */
const STAGE1_ROUND_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * The project's metrics, registered on one registry. Coordinator and workers both create one; the queue
 * gauges are only filled where {@link collectQueueMetrics} runs (the coordinator), the others where the
 * work happens.
 */
export class ScaleotMetrics {
  readonly registry: Registry;
  /** Jobs per queue and state, straight from BullMQ's counters. */
  readonly jobs: Gauge<'queue' | 'state'>;
  /** waiting + prioritized + delayed: the backlog KEDA scales worker groups on. */
  readonly queueDepth: Gauge<'queue'>;
  readonly jobDuration: Histogram<'queue' | 'kind' | 'outcome'>;
  readonly stage1RoundSeconds: Histogram<string>;
  readonly tokensPerSecond: Gauge<string>;
  /** Tensor bytes over ZeroMQ; `direction` is `sent` or `received` from this process' point of view. */
  readonly transferBytes: Counter<'direction'>;
  /** Pipeline-parallel runs: each stage's peak resident memory (bytes) and last micro-batch step time (s), by stage index. */
  readonly pipelineStageMemoryBytes: Gauge<'stage' | 'blocks'>;
  readonly pipelineStageStepSeconds: Gauge<'stage' | 'blocks'>;
  /** Stages of the current pipeline plan (1: the model fits one worker). */
  readonly pipelineStages: Gauge<string>;
  /** Scrapes whose queue counts could not be read (Redis down); the queue gauges keep their last values. */
  readonly queueMetricsErrors: Counter<string>;

  private readonly trackedQueues = new Set<QueueLike>();
  private refreshing: Promise<void> | undefined;
  private log: Logger | undefined;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    // The queue gauges refresh the tracked queues when scraped; the shared in-flight promise makes one
    // scrape cost one getJobCounts per queue.
    const refresh = () => this.refreshTrackedQueues();
    this.jobs = new Gauge({
      name: 'scaleot_jobs',
      help: 'Jobs per BullMQ queue and state, as reported by getJobCounts',
      labelNames: ['queue', 'state'],
      registers,
      collect: refresh,
    });
    this.queueDepth = new Gauge({
      name: 'scaleot_queue_depth',
      help: 'Jobs waiting to be picked up per queue: waiting + prioritized + delayed',
      labelNames: ['queue'],
      registers,
      collect: refresh,
    });
    this.queueMetricsErrors = new Counter({
      name: 'scaleot_queue_metrics_errors_total',
      help: 'Scrapes that could not read queue counts from Redis; queue gauges then keep their last values',
      registers,
      // Registries collect metrics concurrently: waiting on the same refresh counts this scrape's failure.
      collect: refresh,
    });
    this.jobDuration = new Histogram({
      name: 'scaleot_job_duration_seconds',
      help: 'Wall-clock duration of processed jobs',
      labelNames: ['queue', 'kind', 'outcome'],
      buckets: JOB_DURATION_BUCKETS,
      registers,
    });
    this.stage1RoundSeconds = new Histogram({
      name: 'scaleot_stage1_round_seconds',
      help: 'Duration of one stage-1 (emulator distillation) round, broadcast to aggregate',
      buckets: STAGE1_ROUND_BUCKETS,
      registers,
    });
    this.tokensPerSecond = new Gauge({
      name: 'scaleot_tokens_per_second',
      help: 'Training throughput of the most recent step, in tokens per second',
      registers,
    });
    this.pipelineStageMemoryBytes = new Gauge({
      name: 'scaleot_pipeline_stage_memory_bytes',
      help: 'Peak resident memory of each pipeline stage worker, bytes',
      labelNames: ['stage', 'blocks'],
      registers,
    });
    this.pipelineStageStepSeconds = new Gauge({
      name: 'scaleot_pipeline_stage_step_seconds',
      help: 'Compute time of the last micro-batch on each pipeline stage, seconds',
      labelNames: ['stage', 'blocks'],
      registers,
    });
    this.pipelineStages = new Gauge({
      name: 'scaleot_pipeline_stages',
      help: 'Stages of the current pipeline plan (1 when the model fits one worker)',
      registers,
    });
    this.transferBytes = new Counter({
      name: 'scaleot_transfer_bytes_total',
      help: 'Tensor bytes moved over ZeroMQ',
      labelNames: ['direction'],
      registers,
    });
  }

  /**
   * Refreshes `scaleot_jobs` and `scaleot_queue_depth` for this queue on every scrape. Returns a function
   * that stops tracking it (its series stay at their last values until the registry is reset).
   */
  trackQueue(queue: QueueLike): () => void {
    this.trackedQueues.add(queue);
    return () => {
      this.trackedQueues.delete(queue);
    };
  }

  private refreshTrackedQueues(): Promise<void> {
    if (this.trackedQueues.size === 0) return Promise.resolve();
    this.refreshing ??= collectQueueMetrics([...this.trackedQueues], this)
      .then(
        () => undefined,
        (error: unknown) => {
          this.queueMetricsErrors.inc();
          this.log ??= createLogger('metrics');
          this.log.warn({ err: error }, 'could not read queue counts; queue gauges keep their last values');
        },
      )
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }
}

/** A registry with the process metrics and the given default labels, nothing else. */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** A fresh registry (see {@link createMetricsRegistry}) with the project's metrics on it. */
export function createMetrics(options: MetricsRegistryOptions = {}): ScaleotMetrics {
  return new ScaleotMetrics(createMetricsRegistry(options));
}
