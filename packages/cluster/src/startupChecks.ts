import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { workerMemoryBytes } from '@scaleot/model';
import type { ClusterConfig } from './clusterConfig.js';
import { clusterConfigFromEnv } from './clusterConfig.js';
import { coordinatorSettingsSchema, readSettingsFile, type CoordinatorSettings } from './contracts.js';
import { redisReachable } from './redisReachable.js';
import { TenantAuth } from './TenantAuth.js';

/** What a process needs before it may say "ready", or every problem found (one line each). */
export type StartupResult<T> = { ok: true; value: T } | { ok: false; problems: string[] };

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function checkStorage(dir: string, problems: string[]): void {
  if (!existsSync(dir)) problems.push(`SCALEOT_STORAGE_DIR: ${dir} does not exist; mount the shared volume there or point the variable at it`);
  else if (!statSync(dir).isDirectory()) problems.push(`SCALEOT_STORAGE_DIR: ${dir} is not a directory`);
  else {
    try {
      accessSync(dir, constants.W_OK | constants.R_OK);
    } catch {
      problems.push(`SCALEOT_STORAGE_DIR: ${dir} is not readable and writable by this process (uid ${process.getuid?.() ?? '?'})`);
    }
  }
}

async function checkRedis(config: ClusterConfig, problems: string[]): Promise<void> {
  const redis = await redisReachable(config.redisUrl, 3000, config.redisPassword);
  if (!redis.ok) problems.push(`SCALEOT_REDIS_URL: no Redis answers at ${config.redisUrl} (${redis.reason}); start Redis, fix the URL, or set SCALEOT_REDIS_PASSWORD`);
}

/** The environment's settings; a malformed one is the only problem reported (nothing else can be checked without them). */
function parseEnvironment(env: NodeJS.ProcessEnv): StartupResult<ClusterConfig> {
  try {
    return { ok: true, value: clusterConfigFromEnv(env) };
  } catch (error) {
    return { ok: false, problems: [message(error)] };
  }
}

/** The coordinator's settings, all checked: environment, tokens file, storage, settings file, ports, Redis. */
export async function coordinatorStartup(env: NodeJS.ProcessEnv = process.env): Promise<StartupResult<{ config: ClusterConfig; settings: CoordinatorSettings; auth: TenantAuth; curveClientKeys?: string[] }>> {
  const problems: string[] = [];
  const parsed = parseEnvironment(env);
  if (!parsed.ok) return parsed;
  const config = parsed.value;
  let auth: TenantAuth | undefined;
  if (!config.apiTokensFile) problems.push('SCALEOT_API_TOKENS_FILE is not set: mount the tokens file ({"tenant": "token", ...}) and point the variable at it');
  else if (!existsSync(config.apiTokensFile)) problems.push(`SCALEOT_API_TOKENS_FILE: ${config.apiTokensFile} does not exist`);
  else {
    try {
      auth = TenantAuth.fromFile(config.apiTokensFile);
      if (auth.tenants.length === 0) problems.push(`SCALEOT_API_TOKENS_FILE: ${config.apiTokensFile} names no tenant`);
    } catch (error) {
      problems.push(`SCALEOT_API_TOKENS_FILE: ${message(error)}`);
    }
  }
  // Optional; when set, the dashboard reads it at start: a wrong path is a setup problem, not a crash.
  const operatorTokens = env.SCALEOT_OPERATOR_TOKENS_FILE;
  if (operatorTokens) {
    if (!existsSync(operatorTokens)) problems.push(`SCALEOT_OPERATOR_TOKENS_FILE: ${operatorTokens} does not exist; mount the operators' tokens file ({"name": "token", ...}) there, or unset the variable (no operator view)`);
    else {
      try {
        TenantAuth.fromFile(operatorTokens);
      } catch (error) {
        problems.push(`SCALEOT_OPERATOR_TOKENS_FILE: ${message(error)}`);
      }
    }
  }
  checkStorage(config.storageDir, problems);
  let settings: CoordinatorSettings = {};
  if (env.SCALEOT_COORDINATOR_CONFIG) {
    try {
      settings = readSettingsFile(coordinatorSettingsSchema, env.SCALEOT_COORDINATOR_CONFIG, 'SCALEOT_COORDINATOR_CONFIG');
    } catch (error) {
      problems.push(message(error));
    }
  }
  const z85Key = (k: unknown) => typeof k === 'string' && /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/.test(k);
  let curveClientKeys: string[] | undefined;
  if (config.curveClientKeysFile) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(config.curveClientKeysFile, 'utf8'));
      if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every(z85Key)) {
        problems.push(`SCALEOT_CURVE_CLIENT_KEYS_FILE: ${config.curveClientKeysFile} must hold a non-empty JSON list of 40-character Z85 CURVE public keys`);
      } else curveClientKeys = parsed as string[];
    } catch (error) {
      problems.push(`SCALEOT_CURVE_CLIENT_KEYS_FILE: ${config.curveClientKeysFile} cannot be read as JSON (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
    }
  }
  if (config.curveClientPublicKeys) {
    if (config.curveClientPublicKeys.length === 0 || !config.curveClientPublicKeys.every(z85Key)) {
      problems.push('SCALEOT_CURVE_CLIENT_PUBLIC_KEYS must list 40-character Z85 CURVE public keys, comma-separated');
    } else curveClientKeys = [...new Set([...(curveClientKeys ?? []), ...config.curveClientPublicKeys])];
  }
  if ((config.curveClientKeysFile || config.curveClientPublicKeys) && !config.curvePublicKey) {
    problems.push('a CURVE client allow-list (SCALEOT_CURVE_CLIENT_KEYS_FILE / SCALEOT_CURVE_CLIENT_PUBLIC_KEYS) is set but CURVE is off: set SCALEOT_CURVE_SERVER_PUBLIC_KEY and SCALEOT_CURVE_SERVER_SECRET_KEY too');
  }
  if (config.curvePublicKey && !config.curveSecretKey) problems.push('SCALEOT_CURVE_SERVER_PUBLIC_KEY is set without SCALEOT_CURVE_SERVER_SECRET_KEY');
  const ports: [string, number][] = [
    ['SCALEOT_HTTP_PORT', config.httpPort],
    ['SCALEOT_ZMQ_PARAMS_PORT', config.paramsPort],
    ['SCALEOT_ZMQ_RESULTS_PORT', config.resultsPort],
  ];
  for (const [name, port] of ports) {
    const same = ports.find(([other, p]) => other !== name && p === port && port !== 0);
    if (same && name < same[0]) problems.push(`${name} and ${same[0]} are both ${port}; give each its own port`);
    if (port !== 0 && !(await portFree(port, name === 'SCALEOT_HTTP_PORT' ? config.httpHost : '0.0.0.0'))) problems.push(`${name}: port ${port} is in use (another coordinator on this host?); stop it or choose another port`);
  }
  await checkRedis(config, problems);
  return problems.length ? { ok: false, problems } : { ok: true, value: { config, settings, auth: auth!, curveClientKeys } };
}

/** A worker's settings: environment, storage, metrics port (a second worker on a host needs its own or 0), Redis. */
export async function workerStartup(env: NodeJS.ProcessEnv = process.env): Promise<StartupResult<ClusterConfig>> {
  const problems: string[] = [];
  const parsed = parseEnvironment(env);
  if (!parsed.ok) return parsed;
  const config = parsed.value;
  checkStorage(config.storageDir, problems);
  if (config.metricsPort !== 0 && !(await portFree(config.metricsPort, '0.0.0.0'))) {
    problems.push(`SCALEOT_METRICS_PORT: port ${config.metricsPort} is in use (another worker on this host?); give each worker its own port, or 0 for any free one`);
  }
  if (Boolean(config.curveClientPublicKey) !== Boolean(config.curveClientSecretKey)) problems.push('SCALEOT_CURVE_CLIENT_PUBLIC_KEY and SCALEOT_CURVE_CLIENT_SECRET_KEY go together');
  try {
    // The worker reports it to the coordinator's stage planning.
    workerMemoryBytes(env);
  } catch (error) {
    problems.push(message(error));
  }
  await checkRedis(config, problems);
  return problems.length ? { ok: false, problems } : { ok: true, value: config };
}

/** Prints each problem as one line on stderr and exits 2 (no stack trace: these are settings, not bugs). */
export function exitWithProblems(role: string, problems: string[]): never {
  for (const p of problems) process.stderr.write(`scaleot-${role}: ${p}\n`);
  process.stderr.write(`scaleot-${role}: not started (${problems.length} problem${problems.length > 1 ? 's' : ''}); see --help for the settings\n`);
  process.exit(2);
}
