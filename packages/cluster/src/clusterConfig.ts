import { resolve } from 'node:path';
import { parseJobRoutes, parseQueueNames, type JobRoutes } from '@scaleot/queue';
import { ClusterError } from './ClusterError.js';

/** The environment contract of docs/deployment.md, parsed once per process. */
export interface ClusterConfig {
  /** `SCALEOT_REDIS_URL`. Default `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** `SCALEOT_REDIS_PASSWORD`; unset = no AUTH. */
  redisPassword?: string;
  /** `SCALEOT_QUEUE_PREFIX`. Default `scaleot`. */
  queuePrefix: string;
  /** `SCALEOT_STORAGE_DIR`. Default `/data`. */
  storageDir: string;
  /** `SCALEOT_COORDINATOR_HOST` (workers). Default `127.0.0.1`. */
  coordinatorHost: string;
  /** `SCALEOT_ADVERTISE_HOST`: the address other processes reach this one's pipeline sockets at (a pod's IP). Default `127.0.0.1`. */
  advertiseHost: string;
  /** `SCALEOT_ZMQ_PARAMS_PORT`. Default 5555. */
  paramsPort: number;
  /** `SCALEOT_ZMQ_RESULTS_PORT`. Default 5556. */
  resultsPort: number;
  /** `SCALEOT_CURVE_SERVER_PUBLIC_KEY`; unset = plain TCP. */
  curvePublicKey?: string;
  /** `SCALEOT_CURVE_SERVER_SECRET_KEY` (coordinator only). */
  curveSecretKey?: string;
  /** `SCALEOT_API_TOKENS_FILE` (coordinator). */
  apiTokensFile?: string;
  /** `SCALEOT_WORKER_GROUP`. Default `cpu`. */
  workerGroup: string;
  /** `SCALEOT_QUEUE_NAMES` (workers): queues consumed, comma-separated. Default `[SCALEOT_QUEUE_NAME || scaleot]`. */
  queueNames: string[];
  /** `SCALEOT_JOB_ROUTES` (coordinator): `kind=queue,...,*=queue`. Default every kind to `SCALEOT_QUEUE_NAME || scaleot`. */
  jobRoutes: JobRoutes;
  /** `SCALEOT_WORKER_CONCURRENCY`. Default 1. */
  workerConcurrency: number;
  /** `SCALEOT_JOB_LOCK_MS`: BullMQ job lock (a dead worker's job is re-run within about lock + stalled interval). Default 30000. */
  jobLockMs: number;
  /** `SCALEOT_STALLED_INTERVAL_MS`. Default 15000. */
  stalledIntervalMs: number;
  /** `SCALEOT_HTTP_PORT` (coordinator, fixed 8080 in images; tests pick another). Default 8080. */
  httpPort: number;
  /** `SCALEOT_METRICS_PORT` (workers, fixed 9090 in images; 0 = any free port). Default 9090. */
  metricsPort: number;
  /** `SCALEOT_HTTP_HOST` (coordinator). Default `0.0.0.0`. */
  httpHost: string;
  /** `SCALEOT_TENANT_MAX_ACTIVE_REQUESTS`: unfinished requests per tenant. Default 16. */
  maxActiveRequests: number;
  /** `SCALEOT_TENANT_MAX_STORAGE_BYTES`: storage per tenant. Default 20 GiB. */
  maxStorageBytes: number;
  /** `SCALEOT_RETENTION_HOURS`: finished requests are deleted this long after their last update; 0 keeps them. Default 168. */
  retentionHours: number;
  /** `SCALEOT_API_RATE_PER_SECOND` / `SCALEOT_API_RATE_BURST`: API token bucket per tenant. Defaults 20 and 60. */
  apiRatePerSecond: number;
  apiRateBurst: number;
  /** `SCALEOT_CURVE_CLIENT_KEYS_FILE` (coordinator): JSON list of the workers' CURVE public keys allowed to connect; unset = any client holding the server key. */
  curveClientKeysFile?: string;
  /** `SCALEOT_CURVE_CLIENT_PUBLIC_KEYS` (coordinator): the same allow-list inline, comma-separated (what the chart's CURVE Secret provides). */
  curveClientPublicKeys?: string[];
  /** `SCALEOT_CURVE_CLIENT_PUBLIC_KEY` / `SCALEOT_CURVE_CLIENT_SECRET_KEY` (workers): this worker's CURVE key pair, listed in the coordinator's allow-list. */
  curveClientPublicKey?: string;
  curveClientSecretKey?: string;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0, max = 2 ** 31): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ClusterError('BAD_OPTION', `${name} must be an integer in [${min}, ${max}], got "${raw}"`, { where: name });
  }
  return value;
}

export function clusterConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterConfig {
  const redisUrl = env.SCALEOT_REDIS_URL || 'redis://127.0.0.1:6379';
  if (/^rediss?:\/\/[^/]*@/.test(redisUrl)) {
    throw new ClusterError('BAD_OPTION', 'SCALEOT_REDIS_URL must not carry credentials; put the password in SCALEOT_REDIS_PASSWORD', { where: 'SCALEOT_REDIS_URL' });
  }
  return {
    redisUrl,
    redisPassword: env.SCALEOT_REDIS_PASSWORD || undefined,
    queuePrefix: env.SCALEOT_QUEUE_PREFIX || 'scaleot',
    storageDir: resolve(env.SCALEOT_STORAGE_DIR || '/data'),
    coordinatorHost: env.SCALEOT_COORDINATOR_HOST || '127.0.0.1',
    advertiseHost: env.SCALEOT_ADVERTISE_HOST || '127.0.0.1',
    paramsPort: intVar(env, 'SCALEOT_ZMQ_PARAMS_PORT', 5555, 0, 65535),
    resultsPort: intVar(env, 'SCALEOT_ZMQ_RESULTS_PORT', 5556, 0, 65535),
    curvePublicKey: env.SCALEOT_CURVE_SERVER_PUBLIC_KEY || undefined,
    curveSecretKey: env.SCALEOT_CURVE_SERVER_SECRET_KEY || undefined,
    apiTokensFile: env.SCALEOT_API_TOKENS_FILE || undefined,
    workerGroup: env.SCALEOT_WORKER_GROUP || 'cpu',
    queueNames: parseQueueNames(env.SCALEOT_QUEUE_NAMES, env.SCALEOT_QUEUE_NAME || 'scaleot'),
    jobRoutes: parseJobRoutes(env.SCALEOT_JOB_ROUTES, env.SCALEOT_QUEUE_NAME || 'scaleot'),
    workerConcurrency: intVar(env, 'SCALEOT_WORKER_CONCURRENCY', 1, 1, 64),
    jobLockMs: intVar(env, 'SCALEOT_JOB_LOCK_MS', 30_000, 1000),
    stalledIntervalMs: intVar(env, 'SCALEOT_STALLED_INTERVAL_MS', 15_000, 500),
    httpPort: intVar(env, 'SCALEOT_HTTP_PORT', 8080, 0, 65535),
    metricsPort: intVar(env, 'SCALEOT_METRICS_PORT', 9090, 0, 65535),
    httpHost: env.SCALEOT_HTTP_HOST || '0.0.0.0',
    maxActiveRequests: intVar(env, 'SCALEOT_TENANT_MAX_ACTIVE_REQUESTS', 16, 1, 1_000_000),
    maxStorageBytes: intVar(env, 'SCALEOT_TENANT_MAX_STORAGE_BYTES', 20 * 2 ** 30, 0, Number.MAX_SAFE_INTEGER),
    retentionHours: intVar(env, 'SCALEOT_RETENTION_HOURS', 168, 0, 1_000_000),
    apiRatePerSecond: intVar(env, 'SCALEOT_API_RATE_PER_SECOND', 20, 1, 1_000_000),
    apiRateBurst: intVar(env, 'SCALEOT_API_RATE_BURST', 60, 1, 1_000_000),
    curveClientKeysFile: env.SCALEOT_CURVE_CLIENT_KEYS_FILE || undefined,
    curveClientPublicKeys: env.SCALEOT_CURVE_CLIENT_PUBLIC_KEYS ? env.SCALEOT_CURVE_CLIENT_PUBLIC_KEYS.split(/[\s,]+/).filter(Boolean) : undefined,
    curveClientPublicKey: env.SCALEOT_CURVE_CLIENT_PUBLIC_KEY || undefined,
    curveClientSecretKey: env.SCALEOT_CURVE_CLIENT_SECRET_KEY || undefined,
  };
}

/** ioredis options from the URL and the separate password (the URL never carries credentials). */
export function redisConnectionOf(config: Pick<ClusterConfig, 'redisUrl' | 'redisPassword'>): { host: string; port: number; db?: number; password?: string; tls?: object } {
  const url = new URL(config.redisUrl);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined;
  return {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
    ...(config.redisPassword ? { password: config.redisPassword } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** A reference from a job payload: absolute paths as they are, others under the storage dir. */
export function resolveArtifact(storageDir: string, ref: string): string {
  return ref.startsWith('/') ? ref : resolve(storageDir, ref);
}

const ENVIRONMENT: { name: string; roles: ('coordinator' | 'worker')[]; doc: string }[] = [
  { name: 'SCALEOT_REDIS_URL', roles: ['coordinator', 'worker'], doc: 'Redis of the job queue, without credentials (default redis://127.0.0.1:6379)' },
  { name: 'SCALEOT_REDIS_PASSWORD', roles: ['coordinator', 'worker'], doc: 'Redis password, from a Secret (default: no AUTH)' },
  { name: 'SCALEOT_QUEUE_PREFIX', roles: ['coordinator', 'worker'], doc: 'BullMQ key prefix (default scaleot)' },
  { name: 'SCALEOT_STORAGE_DIR', roles: ['coordinator', 'worker'], doc: 'shared volume for models and artifacts (default /data)' },
  { name: 'SCALEOT_BACKEND', roles: ['coordinator', 'worker'], doc: 'tfjs backend: wasm (default), cpu or tensorflow' },
  { name: 'SCALEOT_NATIVE_GEMM', roles: ['coordinator', 'worker'], doc: 'wasm backend: matmuls on OpenBLAS (the @scaleot/blas addon, built when libopenblas-dev is installed); 0 keeps the wasm kernels (default on when built)' },
  { name: 'OPENBLAS_NUM_THREADS', roles: ['coordinator', 'worker'], doc: 'OpenBLAS threads per matmul (default 1: data-parallel replicas already use one thread per core)' },
  { name: 'SCALEOT_LOG_LEVEL', roles: ['coordinator', 'worker'], doc: 'pino level (default info)' },
  { name: 'SCALEOT_ADVERTISE_HOST', roles: ['coordinator', 'worker'], doc: 'address peers reach this process\' pipeline-parallel sockets at, e.g. the pod IP (default 127.0.0.1)' },
  { name: 'SCALEOT_WORKER_MEMORY_BYTES', roles: ['coordinator', 'worker'], doc: 'memory one worker may use, bytes; workers report it in the worker registry and the coordinator cuts stage 1 into pipeline stages to fit it when a model does not fit one worker (default: the pod/cgroup memory limit, else the machine\'s memory)' },
  { name: 'SCALEOT_ZMQ_PARAMS_PORT', roles: ['coordinator', 'worker'], doc: 'ZeroMQ port publishing stage-1 parameters (default 5555)' },
  { name: 'SCALEOT_ZMQ_RESULTS_PORT', roles: ['coordinator', 'worker'], doc: 'ZeroMQ port collecting gradients (default 5556)' },
  { name: 'SCALEOT_CURVE_SERVER_PUBLIC_KEY', roles: ['coordinator', 'worker'], doc: 'CURVE public key of the coordinator (unset: plain TCP)' },
  { name: 'SCALEOT_CURVE_SERVER_SECRET_KEY', roles: ['coordinator'], doc: 'CURVE secret key, from a Secret; never given to workers' },
  { name: 'SCALEOT_API_TOKENS_FILE', roles: ['coordinator'], doc: 'JSON file {"tenant": "bearer token"} of the data owners (required)' },
  { name: 'SCALEOT_COORDINATOR_CONFIG', roles: ['coordinator'], doc: 'optional JSON file of stage-1, tuning and evaluation settings' },
  { name: 'SCALEOT_HTTP_PORT', roles: ['coordinator'], doc: 'HTTP API, /healthz, /readyz (and /metrics unless SCALEOT_METRICS_PORT is set) (default 8080)' },
  { name: 'SCALEOT_HTTP_HOST', roles: ['coordinator'], doc: 'address the HTTP API binds (default 0.0.0.0)' },
  { name: 'SCALEOT_TENANT_MAX_ACTIVE_REQUESTS', roles: ['coordinator'], doc: 'unfinished requests per data owner (default 16)' },
  { name: 'SCALEOT_TENANT_MAX_STORAGE_BYTES', roles: ['coordinator'], doc: 'storage per data owner, bytes (default 21474836480)' },
  { name: 'SCALEOT_RETENTION_HOURS', roles: ['coordinator'], doc: 'finished requests are deleted after this many hours; 0 keeps them (default 168)' },
  { name: 'SCALEOT_API_RATE_PER_SECOND', roles: ['coordinator'], doc: 'API requests per second per data owner; over it: 429 with Retry-After (default 20)' },
  { name: 'SCALEOT_API_RATE_BURST', roles: ['coordinator'], doc: 'API burst per data owner (default 60)' },
  { name: 'SCALEOT_CURVE_CLIENT_KEYS_FILE', roles: ['coordinator'], doc: 'JSON list of worker CURVE public keys allowed to connect (unset: any client with the server key)' },
  { name: 'SCALEOT_OPERATOR_TOKENS_FILE', roles: ['coordinator'], doc: 'optional JSON file {"operator": "bearer token"}: tokens that see the /ui operator view (stage 1, workers, queues, every tenant)' },
  { name: 'SCALEOT_CURVE_SECRET_NAME', roles: ['coordinator'], doc: '`scaleot-coordinator curve-keygen` (the chart\'s pre-install hook): the Kubernetes Secret it creates once with the CURVE keys' },
  { name: 'SCALEOT_CURVE_SECRET_NAMESPACE', roles: ['coordinator'], doc: '`curve-keygen`: namespace of that Secret (default: the pod\'s)' },
  { name: 'SCALEOT_CURVE_CLIENT_PUBLIC_KEYS', roles: ['coordinator'], doc: 'the allow-list inline: worker CURVE public keys, comma-separated (the chart sets it from its CURVE Secret)' },
  { name: 'SCALEOT_CURVE_CLIENT_PUBLIC_KEY', roles: ['worker'], doc: 'this worker\'s CURVE public key (in the coordinator\'s allow-list)' },
  { name: 'SCALEOT_CURVE_CLIENT_SECRET_KEY', roles: ['worker'], doc: 'this worker\'s CURVE secret key, from a Secret' },
  { name: 'SCALEOT_JOB_ROUTES', roles: ['coordinator'], doc: 'queue of each job kind: kind=queue,...,*=queue (default: every kind to SCALEOT_QUEUE_NAME or scaleot)' },
  { name: 'SCALEOT_QUEUE_NAMES', roles: ['worker'], doc: 'queues this worker consumes, comma-separated (default: SCALEOT_QUEUE_NAME or scaleot)' },
  { name: 'SCALEOT_COORDINATOR_HOST', roles: ['coordinator', 'worker'], doc: 'address workers reach the coordinator at (default 127.0.0.1)' },
  { name: 'SCALEOT_WORKER_GROUP', roles: ['worker'], doc: 'worker group name (default cpu)' },
  { name: 'SCALEOT_WORKER_CONCURRENCY', roles: ['worker'], doc: 'jobs at once per worker (default 1)' },
  { name: 'SCALEOT_METRICS_PORT', roles: ['coordinator', 'worker'], doc: '/healthz, /readyz, /metrics (workers: default 9090, 0 picks a free port: one per worker on a host; coordinator: set = /metrics only here, not on the API port)' },
  { name: 'SCALEOT_THREADS', roles: ['coordinator', 'worker'], doc: 'cores a job may use for data-parallel replicas (default: available parallelism, capped by the cgroup CPU limit)' },
  { name: 'SCALEOT_JOB_LOCK_MS', roles: ['coordinator', 'worker'], doc: 'BullMQ job lock; a dead worker\'s job is re-run after about lock + stalled interval (default 30000)' },
  { name: 'SCALEOT_STALLED_INTERVAL_MS', roles: ['coordinator', 'worker'], doc: 'stalled-job check interval (default 15000)' },
];

/** `--help` of the coordinator and worker processes: they are configured by environment only. */
export function environmentHelp(role: 'coordinator' | 'worker', summary: string): string {
  const rows = ENVIRONMENT.filter((e) => e.roles.includes(role));
  const width = Math.max(...rows.map((r) => r.name.length));
  return [
    `Usage: scaleot-${role}`,
    '',
    summary,
    '',
    'Configured by environment variables (docs/deployment.md):',
    ...rows.map((r) => `  ${r.name.padEnd(width)}  ${r.doc}`),
    '',
    'Signals: SIGTERM/SIGINT drain gracefully (the running job finishes; unfinished work resumes on the next start).',
  ].join('\n');
}
