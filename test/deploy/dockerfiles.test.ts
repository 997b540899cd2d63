import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INFRA, ROOT, checkDockerfile, finalEnv, listFiles, parseDockerfile, read, stageChain } from './deployChecks.js';

const dockerfiles = listFiles(join(INFRA, 'docker'), '.Dockerfile');
const byName = (name: string) => {
  const file = dockerfiles.find((f) => f.endsWith(`/${name}.Dockerfile`));
  if (!file) throw new Error(`infra/docker/${name}.Dockerfile is missing`);
  return read(file);
};

describe('Dockerfiles', () => {
  it('exist for the coordinator, the CPU worker and the GPU workers (tfjs-node-gpu, webgpu)', () => {
    expect(dockerfiles.map((f) => f.split('/').pop())).toEqual([
      'coordinator.Dockerfile',
      'worker-cpu.Dockerfile',
      'worker-gpu.Dockerfile',
      'worker-webgpu.Dockerfile',
    ]);
  });

  for (const file of dockerfiles) {
    const name = file.split('/').pop()!;
    const text = read(file);
    const stages = parseDockerfile(text);

    it(`${name}: pinned bases, non-root final stage, HEALTHCHECK, no baked-in secrets, multi-stage`, () => {
      expect(checkDockerfile(text)).toEqual([]);
    });

    it(`${name}: builds with npm ci + npm run build and ships production dependencies only`, () => {
      const runs = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args));
      expect(runs.some((r) => /npm ci\b(?!.*--omit=dev)/.test(r))).toBe(true);
      expect(runs.some((r) => /npm run build\b/.test(r))).toBe(true);
      expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true);
      // The runtime copies built output, never the build stage's full node_modules (dev deps).
      const final = stageChain(stages).flatMap((s) => s.instructions);
      const copies = final.filter((i) => i.keyword === 'COPY').map((i) => i.args);
      expect(copies.some((c) => /--from=build\b.*node_modules/.test(c))).toBe(false);
      expect(copies.some((c) => /--from=deps\b/.test(c))).toBe(true);
    });

    it(`${name}: node images are the exact Node 20 bookworm-slim release`, () => {
      const images = [
        ...stages.map((s) => s.base),
        ...stages.flatMap((s) => s.instructions.map((i) => /--from=(\S+:\S+)/.exec(i.args)?.[1]).filter(Boolean)),
      ] as string[];
      const nodeImages = images.filter((ref) => ref.startsWith('node:'));
      expect(nodeImages.length).toBeGreaterThan(0);
      for (const ref of nodeImages) expect(ref).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    });
  }

  it('the coordinator exposes the API, metrics and both ZeroMQ ports and starts the coordinator app', () => {
    const final = stageChain(parseDockerfile(byName('coordinator'))).flatMap((s) => s.instructions);
    expect(final.find((i) => i.keyword === 'EXPOSE')?.args.split(/\s+/).sort()).toEqual(['5555', '5556', '8080', '9090']);
    expect(final.findLast((i) => i.keyword === 'CMD')?.args).toBe('["node", "apps/coordinator/dist/main.js"]');
    expect(final.find((i) => i.keyword === 'HEALTHCHECK')?.args).toContain('127.0.0.1:8080/healthz');
  });

  for (const name of ['coordinator', 'worker-cpu', 'worker-gpu']) {
    it(`${name}: scaleot, scaleot-coordinator and scaleot-worker on PATH, no floating # syntax line`, () => {
      const text = byName(name);
      expect(text).not.toMatch(/^# syntax=/m);
      for (const command of ['scaleot', 'scaleot-coordinator', 'scaleot-worker']) expect(text).toMatch(new RegExp(`ln -s /app/apps/[a-z]+/bin/${command}\\.js /usr/local/bin/${command}\\b`));
      expect(text).toMatch(/cp -R "\$d\/bin"/);
    });
  }

  it('the CPU worker runs the wasm backend with health on 9090', () => {
    const stages = parseDockerfile(byName('worker-cpu'));
    const final = stageChain(stages).flatMap((s) => s.instructions);
    expect(finalEnv(stages).SCALEOT_BACKEND).toBe('wasm');
    expect(final.find((i) => i.keyword === 'HEALTHCHECK')?.args).toContain('127.0.0.1:9090/healthz');
    expect(final.findLast((i) => i.keyword === 'CMD')?.args).toBe('["node", "apps/worker/dist/main.js"]');
  });

  it('the GPU worker is a CUDA 11 + cuDNN 8 runtime image with tfjs-node-gpu 4.22.0 and backend auto', () => {
    const text = byName('worker-gpu');
    const stages = parseDockerfile(text);
    const final = stageChain(stages);
    // libtensorflow 2.9.1 inside tfjs-node-gpu 4.22.0 links the CUDA 11 / cuDNN 8 sonames.
    expect(final[0].base).toMatch(/^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/);
    expect(text).toMatch(/npm install [^\n]*-E @tensorflow\/tfjs-node-gpu@4\.22\.0/);
    expect(finalEnv(stages).SCALEOT_BACKEND).toBe('auto');
    expect(final.flatMap((s) => s.instructions).find((i) => i.keyword === 'HEALTHCHECK')?.args).toContain('9090/healthz');
  });

  it('the checker rejects unpinned images, root users, secrets in ENV/ARG and single-stage builds', () => {
    const bad = [
      'FROM node:20 AS build',
      'ARG NPM_TOKEN=abc123',
      'FROM node:latest',
      'ENV DB_PASSWORD=hunter2 SCALEOT_LOG_LEVEL=info',
      'ENV API_KEY sk-123',
      'COPY --from=busybox:1 /bin/sh /bin/sh',
      'USER root',
      'CMD ["node", "main.js"]',
    ].join('\n');
    const problems = checkDockerfile(bad);
    expect(problems).toEqual([
      'FROM node:20: pin an exact version tag or a @sha256 digest',
      'line 2: ARG NPM_TOKEN bakes a secret-looking value into the image',
      'FROM node:latest: pin an exact version tag or a @sha256 digest',
      'line 4: ENV DB_PASSWORD bakes a secret-looking value into the image',
      'line 5: ENV API_KEY bakes a secret-looking value into the image',
      'line 6: COPY --from=busybox:1 is neither a stage nor a pinned image',
      'the final stage runs as root',
      'the final stage has no HEALTHCHECK CMD',
    ]);
    expect(checkDockerfile('FROM node:20.20.2-bookworm-slim\nCMD ["node"]\n')).toContain(
      'multi-stage build expected, found 1 FROM',
    );
    expect(checkDockerfile('FROM node:20.20.2-bookworm-slim AS a\nFROM a\nCMD ["x"]\n')).toContain(
      'the final stage runs as root: add a USER',
    );
  });

  it('.dockerignore keeps dependencies, build output, VCS data and secrets out of the build context', () => {
    const ignored = read(join(ROOT, '.dockerignore'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const pattern of ['**/node_modules', '**/dist', '.git', '.env', '**/.env', '**/*.pem', '**/*.key']) {
      expect(ignored).toContain(pattern);
    }
    // What the builds COPY must stay in the context.
    for (const needed of ['packages', 'apps', 'models', 'package.json', 'package-lock.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});
