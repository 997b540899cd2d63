import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, WaitingChildrenError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger, type Logger } from '@scaleot/core';
import { InvalidJobPayloadError } from './InvalidJobPayloadError.js';
import { cancelFlagKey, DEFAULT_PREFIX, DEFAULT_QUEUE_NAME } from './JobQueue.js';
import { isJobKind, validateJobPayload, type JobKind, type JobPayload } from './jobKinds.js';
import type { PayloadLimits } from './payloadGuard.js';
import { QueueError } from './QueueError.js';
import { defaultRedisConnection, openRedis, type RedisConnection } from './redisConnection.js';
import { TenantRateLimiter } from './TenantRateLimiter.js';
import { DEFAULT_TENANT, assertRateLimit, type RateLimit, type TenantPolicies } from './tenants.js';

/** What a handler gets besides its validated payload. */
export interface JobContext<K extends JobKind = JobKind> {
  kind: K;
  /** The BullMQ job (id, timestamps, `log`, ...). */
  job: Job<JobPayload<K>>;
  tenant: string;
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number;
  /** Reports progress (stored on the job, seen by QueueEvents and dashboards). */
  progress(value: number | object): Promise<void>;
  /** Results of this job's children by child job key (flow parents, e.g. `stage1.round`). */
  childrenValues<T = unknown>(): Promise<Record<string, T>>;
  /** Aborted when BullMQ cancels the job. */
  signal?: AbortSignal;
  log: Logger;
}

export type JobHandler<K extends JobKind> = (payload: JobPayload<K>, context: JobContext<K>) => Promise<unknown>;
export type JobHandlers = { [K in JobKind]?: JobHandler<K> };

export interface JobWorkerOptions {
  /** Queue to serve. Default `scaleot`. */
  queue?: string;
  /** Redis URL or ioredis options (`maxRetriesPerRequest` is forced to null). Default as {@link JobQueueOptions}. */
  connection?: RedisConnection;
  /** Redis key prefix; must match the producers'. Default `scaleot`. */
  prefix?: string;
  /** Handler per job kind. A job of a kind without a handler fails at once (NO_HANDLER). */
  handlers: JobHandlers;
  /** Jobs run at once by this worker. Default 1 (training jobs use the whole process). */
  concurrency?: number;
  /** The worker's name: jobs record it (`processedBy`) and its Redis connections carry it. Default `<host>:<pid>`. */
  name?: string;
  /**
   * Job lock, ms. The worker renews it every `lockDurationMs / 2` while the handler runs; when a worker
   * dies, its jobs are re-run once the lock expired and a stalled check ran, i.e. within about
   * lockDurationMs + stalledIntervalMs. The event loop must not be blocked longer than half of this
   * (await between training steps), or a healthy job is taken for stalled and run twice. Default 60000.
   */
  lockDurationMs?: number;
  /** How often a running job checks whether the coordinator stopped it (the cancel flag: its request was deleted or another of its jobs failed), ms. Default 1000. */
  cancelPollMs?: number;
  /** How often this worker looks for stalled jobs, ms. Default 30000. */
  stalledIntervalMs?: number;
  /** Times a job may be recovered from a dead worker before it fails. Default 2. */
  maxStalledCount?: number;
  /** Per-tenant start-rate limits (only `rateLimit` is used here). Default none. */
  tenants?: TenantPolicies;
  /** Limit of tenants without their own. Default none (unlimited). */
  defaultRateLimit?: RateLimit;
  /** Bounds on payload size and arrays. Defaults of {@link PayloadLimits}. */
  payloadLimits?: PayloadLimits;
  /** Start taking jobs at construction. Default true. */
  autorun?: boolean;
  /** Logger. Default `createLogger('queue.worker')`. */
  logger?: Logger;
}

export interface JobWorkerEvents {
  /** A job was put back to `delayed` because its tenant is over its rate limit. */
  rateLimited: [job: Job, tenant: string, delayMs: number];
  /** A job failed validation (it fails without retries; the worker goes on). */
  invalid: [job: Job, error: InvalidJobPayloadError | QueueError];
  completed: [job: Job, result: unknown];
  /** A run failed; `willRetry` tells whether BullMQ will run it again. */
  failed: [job: Job | undefined, error: Error, willRetry: boolean];
}

interface ScaleotLikeError {
  code: string;
  unrecoverable: boolean;
  message: string;
}

// Duck-typed so an error from another copy of @scaleot/core is still recognised.
function isScaleotLike(error: unknown): error is ScaleotLikeError {
  return error instanceof Error && typeof (error as Partial<ScaleotLikeError>).code === 'string' && typeof (error as Partial<ScaleotLikeError>).unrecoverable === 'boolean';
}

/**
 * Consumer side of a job queue: validates each payload against its kind, applies per-tenant rate limits,
 * runs the kind's handler and steers BullMQ's retries: invalid payloads and unrecoverable ScaleotErrors
 * fail at once (UnrecoverableError), anything else is retried with the job's backoff.
 */
export class JobWorker extends EventEmitter<JobWorkerEvents> {
  /** The underlying BullMQ worker. */
  readonly worker: Worker;
  readonly queueName: string;
  private readonly connection: Redis;
  private readonly limiter?: TenantRateLimiter;
  private readonly log: Logger;
  private closing?: Promise<void>;

  constructor(private readonly options: JobWorkerOptions) {
    super();
    this.queueName = options.queue ?? DEFAULT_QUEUE_NAME;
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.log = options.logger ?? createLogger('queue.worker');
    for (const kind of Object.keys(options.handlers)) {
      if (!isJobKind(kind)) throw new QueueError('UNKNOWN_JOB_KIND', `handler registered for unknown job kind "${kind}"`);
    }
    if (options.defaultRateLimit) assertRateLimit(options.defaultRateLimit, 'defaultRateLimit');
    for (const [tenant, policy] of Object.entries(options.tenants ?? {})) if (policy.rateLimit) assertRateLimit(policy.rateLimit, `tenant ${tenant}`);

    const connection = options.connection ?? defaultRedisConnection();
    this.connection = openRedis(connection, 'worker', `scaleot:worker:${this.queueName}`);
    const hasLimits = options.defaultRateLimit !== undefined || Object.values(options.tenants ?? {}).some((p) => p.rateLimit);
    if (hasLimits) this.limiter = new TenantRateLimiter(this.connection, `${prefix}:${this.queueName}:tenant-rate`);

    this.worker = new Worker(this.queueName, (job, token, signal) => this.process(job, token, signal), {
      connection: this.connection,
      prefix,
      concurrency: options.concurrency ?? 1,
      name: options.name ?? `${hostname()}:${process.pid}`,
      lockDuration: options.lockDurationMs ?? 60_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
      maxStalledCount: options.maxStalledCount ?? 2,
      autorun: options.autorun ?? true,
    });
    this.worker.on('completed', (job, result) => this.emit('completed', job, result));
    this.worker.on('failed', (job, error) => {
      const willRetry = !!job && !(error instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1);
      this.emit('failed', job, error, willRetry);
    });
    this.worker.on('error', (error) => this.log.error({ err: error, queue: this.queueName }, 'worker error'));
  }

  /** Starts taking jobs (when built with `autorun: false`). */
  run(): Promise<void> {
    return this.worker.run();
  }

  /** Resolves once the worker is connected and taking jobs. */
  waitUntilReady(): Promise<unknown> {
    return this.worker.waitUntilReady();
  }

  /** Stops taking jobs and waits for the running ones to finish (their results are still recorded). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.worker.close();
      await this.connection.quit().catch(() => this.connection.disconnect());
    })();
    return this.closing;
  }

  /**
   * Closes gracefully on the first of `signals` (default SIGTERM, SIGINT: what Kubernetes and Ctrl-C
   * send), then calls `onClosed`. Returns a function that removes the handlers.
   */
  closeOnSignals(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'], onClosed?: (signal: NodeJS.Signals) => void): () => void {
    const handler = (signal: NodeJS.Signals) => {
      this.log.info({ signal, queue: this.queueName }, 'closing: waiting for running jobs');
      void this.close().then(() => onClosed?.(signal));
    };
    for (const signal of signals) process.once(signal, handler);
    return () => {
      for (const signal of signals) process.removeListener(signal, handler);
    };
  }

  private async process(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    const kind = job.name;
    let payload: JobPayload<JobKind>;
    try {
      if (!isJobKind(kind)) throw new QueueError('UNKNOWN_JOB_KIND', `no job kind "${kind}"`, { where: `job ${job.id}` });
      const handlerExists = this.options.handlers[kind] !== undefined;
      if (!handlerExists) throw new QueueError('NO_HANDLER', `this worker has no handler for "${kind}"; route that kind to a queue whose workers handle it`, { where: `job ${job.id}` });
      payload = validateJobPayload(kind, job.data, this.options.payloadLimits);
    } catch (error) {
      if (error instanceof InvalidJobPayloadError || error instanceof QueueError) {
        this.log.warn({ job: job.id, kind, code: error.code }, error.message);
        this.emit('invalid', job, error);
        throw new UnrecoverableError(`${error.code}: ${error.message}`);
      }
      throw error;
    }

    const tenant = (payload as { tenant?: string }).tenant ?? DEFAULT_TENANT;
    const limit = this.options.tenants?.[tenant]?.rateLimit ?? this.options.defaultRateLimit;
    if (limit && this.limiter) {
      const waitMs = await this.limiter.acquire(tenant, limit, job.id ?? 'job');
      if (waitMs > 0) {
        this.emit('rateLimited', job, tenant, waitMs);
        await job.moveToDelayed(Date.now() + waitMs, token);
        throw new DelayedError();
      }
    }

    const handler = this.options.handlers[kind] as JobHandler<JobKind>;
    const log = this.log.child({ job: job.id, kind, tenant });
    // A job is stopped by BullMQ's cancel or by the flag a coordinator sets when its request is deleted
    // or another of its jobs failed (QueueJobRunner.cancelGroup); either aborts the handler's signal (the
    // compute executor terminates the job's thread) and the job fails for good.
    const abort = new AbortController();
    const onCancel = () => abort.abort(signal?.reason ?? new QueueError('CANCELLED', `job ${job.id} was cancelled`));
    signal?.addEventListener('abort', onCancel, { once: true });
    const flag = cancelFlagKey(this.options.prefix ?? DEFAULT_PREFIX, this.queueName, job.id!);
    const poll = setInterval(() => {
      this.connection.exists(flag).then((n) => {
        if (n > 0 && !abort.signal.aborted) {
          log.info('cancelled by the coordinator: stopping its compute');
          abort.abort(new QueueError('CANCELLED', `job ${job.id} was cancelled (its request was deleted, or another of its jobs failed)`));
        }
      }, () => undefined);
    }, this.options.cancelPollMs ?? 1000);
    poll.unref();
    const context: JobContext = {
      kind,
      job: job as Job<JobPayload<JobKind>>,
      tenant,
      attempt: job.attemptsMade + 1,
      progress: (value) => job.updateProgress(value),
      childrenValues: <T>() => job.getChildrenValues<T>(),
      signal: abort.signal,
      log,
    };
    try {
      return await handler(payload, context);
    } catch (error) {
      if (abort.signal.aborted) throw new UnrecoverableError(`${isScaleotLike(error) ? error.code : 'CANCELLED'}: ${error instanceof Error ? error.message : String(error)}`);
      if (error instanceof DelayedError || error instanceof WaitingChildrenError || error instanceof UnrecoverableError) throw error;
      if (isScaleotLike(error) && error.unrecoverable) {
        log.warn({ code: error.code }, `failed for good: ${error.message}`);
        throw new UnrecoverableError(`${error.code}: ${error.message}`);
      }
      log.warn({ err: error, attempt: context.attempt }, 'failed, will retry if attempts remain');
      throw error;
    } finally {
      clearInterval(poll);
      signal?.removeEventListener('abort', onCancel);
    }
  }
}
