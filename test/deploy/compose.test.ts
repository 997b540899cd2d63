import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INFRA, ROOT, isPinnedImage, isPlainObject, loadYaml, read } from './deployChecks.js';

type Service = Record<string, unknown> & {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  command?: string[];
  profiles?: string[];
};
const compose = loadYaml<{ services: Record<string, Service>; volumes: Record<string, unknown>; secrets: Record<string, { file: string }> }>(
  join(INFRA, 'docker-compose.yml'),
);
const redisConf = read(join(INFRA, 'redis/redis.conf'));

function confDirectives(text: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const [key, ...rest] = trimmed.split(/\s+/);
    directives.set(key.toLowerCase(), [...(directives.get(key.toLowerCase()) ?? []), rest.join(' ')]);
  }
  return directives;
}

describe('infra/redis/redis.conf', () => {
  const directives = confDirectives(redisConf);
  it('never evicts BullMQ keys and persists with AOF', () => {
    expect(directives.get('maxmemory-policy')).toEqual(['noeviction']);
    expect(directives.get('appendonly')).toEqual(['yes']);
    expect(directives.get('appendfsync')).toEqual(['everysec']);
  });
  it('is a sane Redis config: known directives only, no password in the file', () => {
    const known = new Set(['maxmemory-policy', 'maxmemory', 'appendonly', 'appendfsync', 'aof-use-rdb-preamble', 'save', 'dir', 'bind', 'port', 'protected-mode', 'tcp-keepalive', 'timeout', 'notify-keyspace-events', 'loglevel']);
    for (const key of directives.keys()) expect(known, key).toContain(key);
    expect(directives.has('requirepass')).toBe(false);
    expect(Number(directives.get('port')?.[0])).toBe(6379);
  });
});

describe('infra/docker-compose.yml', () => {
  const services = compose.services;
  const workers = Object.entries(services).filter(([, s]) => s.build?.dockerfile === 'infra/docker/worker-cpu.Dockerfile');

  it('runs Redis, the coordinator and two CPU workers by default', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['redis', 'coordinator']));
    expect(workers.filter(([, s]) => !s.profiles).length).toBe(2);
    expect(services.coordinator.build?.dockerfile).toBe('infra/docker/coordinator.Dockerfile');
    for (const s of Object.values(services)) if (s.build) expect(existsSync(join(INFRA, s.build.context, s.build.dockerfile))).toBe(true);
  });

  it('mounts infra/redis/redis.conf into Redis and starts redis-server with it', () => {
    const redis = services.redis;
    expect(isPinnedImage(redis.image!)).toBe(true);
    const mount = redis.volumes!.find((v) => v.startsWith('./redis/redis.conf:'));
    expect(mount).toBeDefined();
    expect(existsSync(join(INFRA, 'redis/redis.conf'))).toBe(true);
    const target = mount!.split(':')[1];
    expect(redis.command!.join(' ')).toContain(`redis-server ${target}`);
    expect(redis.volumes!.some((v) => v.endsWith(':/data'))).toBe(true);
  });

  it('shares one storage volume for models and artifacts between the coordinator and every worker', () => {
    expect(isPlainObject(compose.volumes) && 'storage' in compose.volumes).toBe(true);
    for (const [name, s] of [['coordinator', services.coordinator] as const, ...workers]) {
      expect(s.volumes, name).toContain('storage:/data');
      expect(s.environment?.SCALEOT_STORAGE_DIR, name).toBe('/data');
    }
  });

  it('passes the environment contract to each process and takes secrets from outside the file', () => {
    for (const [name, s] of [['coordinator', services.coordinator] as const, ...workers]) {
      const env = s.environment!;
      for (const key of ['SCALEOT_REDIS_URL', 'SCALEOT_REDIS_PASSWORD', 'SCALEOT_COORDINATOR_HOST', 'SCALEOT_ZMQ_PARAMS_PORT', 'SCALEOT_ZMQ_RESULTS_PORT', 'SCALEOT_BACKEND', 'SCALEOT_QUEUE_PREFIX', 'SCALEOT_LOG_LEVEL']) {
        expect(env, `${name} ${key}`).toHaveProperty(key);
      }
      expect(env.SCALEOT_REDIS_URL).toBe('redis://redis:6379');
    }
    for (const [, s] of workers) expect(s.environment).toMatchObject({ SCALEOT_BACKEND: 'wasm', SCALEOT_WORKER_GROUP: 'cpu' });
    expect(services.coordinator.environment?.SCALEOT_API_TOKENS_FILE).toBe('/run/secrets/api-tokens');
    // Operators' tokens: optional (empty = no operator view), a file of infra/secrets/, which the coordinator alone mounts read-only.
    expect(services.coordinator.environment?.SCALEOT_OPERATOR_TOKENS_FILE).toBe('${SCALEOT_OPERATOR_TOKENS_FILE:-}');
    expect(services.coordinator.volumes).toContain('./secrets:/run/scaleot/secrets:ro');
    for (const [name, s] of workers) expect(s.volumes ?? [], name).not.toContain('./secrets:/run/scaleot/secrets:ro');
    expect(read(join(ROOT, 'docs/deployment.md'))).toContain('SCALEOT_OPERATOR_TOKENS_FILE=/run/scaleot/secrets/operator-tokens.json');
    // Literal secrets would end up in git: every secret-looking value is an interpolation.
    const text = read(join(INFRA, 'docker-compose.yml'));
    for (const m of text.matchAll(/^\s*([A-Z_]*(PASSWORD|SECRET|TOKEN|AUTH)[A-Z_]*):\s*(.+)$/gm)) {
      if (m[1].endsWith('_FILE')) continue; // a path to a mounted secret, not the secret
      expect(m[3], m[1]).toMatch(/^\$\{[A-Z_]+(:[-?][^}]*)?\}$/);
    }
    // Only the coordinator gets the CURVE secret key.
    for (const [, s] of workers) expect(s.environment).not.toHaveProperty('SCALEOT_CURVE_SERVER_SECRET_KEY');
  });
});
