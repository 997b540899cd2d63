import { FlowProducer, Queue, type Job, type JobNode, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { validateJobPayload, type AnyJobPayload, type JobKind, type JobPayload } from './jobKinds.js';
import type { PayloadLimits } from './payloadGuard.js';
import { QueueError } from './QueueError.js';
import { defaultRedisConnection, openRedis, type RedisConnection } from './redisConnection.js';
import { DEFAULT_TENANT, TIER_PRIORITY, type TenantPolicies, type TenantTier } from './tenants.js';

/** Queue name used when none is given. */
export const DEFAULT_QUEUE_NAME = 'scaleot';
/** Redis key prefix used when none is given (BullMQ's own default is `bull`). */
export const DEFAULT_PREFIX = 'scaleot';

/** The Redis key that tells a running job to stop (JobWorker polls it; see JobQueue.signalCancel). */
export function cancelFlagKey(prefix: string, queueName: string, jobId: string): string {
  return `${prefix}:${queueName}:cancelled:${jobId}`;
}

/**
 * Job options every job gets unless overridden: 3 attempts with exponential backoff from 5 s
 * (5 s, 10 s) for transient failures (a worker losing Redis, a peer timing out); completed jobs kept
 * 1 day / 1000 jobs for inspection, failed ones 7 days.
 */
export const DEFAULT_JOB_OPTIONS: Readonly<JobsOptions> = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5_000 },
  removeOnComplete: { age: 24 * 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

export interface JobQueueOptions {
  /** Queue name (workers of this queue must register handlers for every kind added to it). Default `scaleot`. */
  name?: string;
  /** Redis URL or ioredis options. Default `SCALEOT_REDIS_URL` or `redis://127.0.0.1:6379`. */
  connection?: RedisConnection;
  /** Prefix of every Redis key of the queue (tests and tenants of one Redis use their own). Default `scaleot`. */
  prefix?: string;
  /** Merged over {@link DEFAULT_JOB_OPTIONS}. */
  defaultJobOptions?: JobsOptions;
  /** Per-kind options merged over the defaults (e.g. more attempts for `stage1.shard`). Default none. */
  kindJobOptions?: Partial<Record<JobKind, JobsOptions>>;
  /** Tenant tiers (priorities). Default: every tenant at `defaultTier`. */
  tenants?: TenantPolicies;
  /** Tier of tenants not listed in `tenants`. Default `standard`. */
  defaultTier?: TenantTier;
  /** Bounds on payload size and arrays. Defaults of {@link PayloadLimits}. */
  payloadLimits?: PayloadLimits;
}

/** Per-job options: BullMQ's, plus the tenant. `priority` overrides the tenant tier's. */
export type AddJobOptions = Omit<JobsOptions, 'parent' | 'repeat'> & {
  /** Tenant whose tier and rate limit apply; written into the payload's `tenant` when it has none. */
  tenant?: string;
};

/** One node of a flow: a job and, for parents, the children that must complete before it runs. */
export interface FlowSpec {
  kind: JobKind;
  payload: AnyJobPayload;
  options?: AddJobOptions;
  /** Queue of this node. Default: this queue. */
  queueName?: string;
  children?: FlowSpec[];
}

export interface QueueDepth {
  waiting: number;
  prioritized: number;
  delayed: number;
  /** waiting + prioritized + delayed: the backlog an autoscaler should see. */
  total: number;
}

/**
 * Producer side of a job queue: validates payloads against their kind before anything reaches Redis,
 * applies tenant priorities and default retry policy, and builds fan-out/fan-in flows.
 */
export class JobQueue {
  readonly name: string;
  readonly prefix: string;
  /** The underlying BullMQ queue, for what this wrapper does not cover. */
  readonly queue: Queue;
  private readonly connection: Redis;
  private flowProducer?: FlowProducer;
  private readonly jobDefaults: JobsOptions;

  constructor(private readonly options: JobQueueOptions = {}) {
    this.name = options.name ?? DEFAULT_QUEUE_NAME;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.connection = openRedis(options.connection ?? defaultRedisConnection(), 'producer', `scaleot:queue:${this.name}`);
    this.jobDefaults = { ...DEFAULT_JOB_OPTIONS, ...options.defaultJobOptions };
    this.queue = new Queue(this.name, { connection: this.connection, prefix: this.prefix, defaultJobOptions: this.jobDefaults });
  }

  /**
   * Tells the worker running job `jobId` to stop: its handler's signal aborts within the worker's
   * cancel poll (JobWorkerOptions.cancelPollMs) and the job fails for good. The flag lives a day.
   */
  async signalCancel(jobId: string): Promise<void> {
    await this.connection.set(cancelFlagKey(this.prefix, this.name, jobId), '1', 'EX', 24 * 3600);
  }

  /** BullMQ priority of a tenant's jobs (lower runs first). */
  priorityFor(tenant: string = DEFAULT_TENANT): number {
    const tier = this.options.tenants?.[tenant]?.tier ?? this.options.defaultTier ?? 'standard';
    return TIER_PRIORITY[tier];
  }

  /** Validates and enqueues one job; throws InvalidJobPayloadError before touching Redis. */
  async add<K extends JobKind>(kind: K, payload: JobPayload<K>, options: AddJobOptions = {}): Promise<Job<JobPayload<K>>> {
    const { data, opts } = this.prepare(kind, payload, options);
    return this.queue.add(kind, data, opts) as Promise<Job<JobPayload<K>>>;
  }

  /** Validates every job first, then enqueues them in one round trip (all or none are validated). */
  async addBulk(jobs: ReadonlyArray<{ kind: JobKind; payload: AnyJobPayload; options?: AddJobOptions }>): Promise<Job[]> {
    const prepared = jobs.map((job) => {
      const { data, opts } = this.prepare(job.kind, job.payload, job.options ?? {});
      return { name: job.kind, data, opts };
    });
    return this.queue.addBulk(prepared);
  }

  /**
   * Adds a parent job that runs only after all its children completed, and can read their results
   * (`context.childrenValues()` in its handler): e.g. a stage-1 round over its shard and rollout jobs.
   * A child that fails for good fails its parent (`failParentOnFailure`), so a round never hangs in
   * `waiting-children`; override per child with `options.failParentOnFailure: false`.
   */
  async addFlow(flow: FlowSpec): Promise<JobNode> {
    this.flowProducer ??= new FlowProducer({ connection: this.connection, prefix: this.prefix });
    const toFlowJob = (node: FlowSpec, isChild: boolean): Parameters<FlowProducer['add']>[0] => {
      const { data, opts } = this.prepare(node.kind, node.payload, node.options ?? {});
      const flowOpts = { ...this.jobDefaults, ...opts, ...(isChild ? { failParentOnFailure: opts.failParentOnFailure ?? true } : {}) };
      const job = { name: node.kind, queueName: node.queueName ?? this.name, data, opts: flowOpts };
      return node.children?.length ? { ...job, children: node.children.map((child) => toFlowJob(child, true)) } : job;
    };
    return this.flowProducer.add(toFlowJob(flow, false));
  }

  /**
   * Jobs waiting to run: waiting + prioritized + delayed (a paused queue keeps its jobs in `waiting`).
   * `LLEN wait` alone would miss prioritized jobs (every job here has a priority) and delayed retries.
   */
  async queueDepth(): Promise<number> {
    return (await this.depth()).total;
  }

  async depth(): Promise<QueueDepth> {
    const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed');
    const waiting = counts.waiting ?? 0;
    const prioritized = counts.prioritized ?? 0;
    const delayed = counts.delayed ?? 0;
    return { waiting, prioritized, delayed, total: waiting + prioritized + delayed };
  }

  pause(): Promise<void> {
    return this.queue.pause();
  }

  resume(): Promise<void> {
    return this.queue.resume();
  }

  /** Deletes every key of the queue (tests, decommissioning). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await this.flowProducer?.close();
    await this.queue.close();
    await this.connection.quit().catch(() => this.connection.disconnect());
  }

  private prepare(kind: JobKind, payload: AnyJobPayload, options: AddJobOptions): { data: AnyJobPayload; opts: JobsOptions } {
    const { tenant: optionTenant, ...jobOptions } = options;
    const payloadTenant = (payload as { tenant?: unknown } | null)?.tenant;
    if (optionTenant !== undefined && payloadTenant !== undefined && optionTenant !== payloadTenant) {
      throw new QueueError('INVALID_OPTIONS', `options.tenant "${optionTenant}" contradicts payload.tenant "${String(payloadTenant)}"`, { where: `job ${kind}` });
    }
    const data = optionTenant !== undefined && payloadTenant === undefined ? ({ ...payload, tenant: optionTenant } as AnyJobPayload) : payload;
    validateJobPayload(kind, data, this.options.payloadLimits);
    const tenant = (data as { tenant?: string }).tenant ?? DEFAULT_TENANT;
    return { data, opts: { ...this.options.kindJobOptions?.[kind], priority: this.priorityFor(tenant), ...jobOptions } };
  }
}

/** A {@link JobQueue} (the factory mirrors `createModel` and friends). */
export function createQueue(options: JobQueueOptions = {}): JobQueue {
  return new JobQueue(options);
}
