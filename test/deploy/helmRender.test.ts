import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART, ROOT, read } from './deployChecks.js';
import { HELM_SHA256, HELM_VERSION, ensureHelm, helm } from './helmBinary.js';
import { validateObject } from './k8sSchemas.js';

// The chart as helm itself sees it: helm v3.17.2 (pinned npm package, sha256 checked) lints it with
// --strict and renders it for every value set below; each rendered object is validated against the
// Kubernetes and CRD schemas with unknown fields rejected, and the cross-object promises are checked
// (KEDA scales each group on exactly the queues it consumes, every routed queue has consumers, no pod
// without resources or with a service-account token it does not need, unique names).

// Rendered manifests are walked by path in assertions; their shapes are checked by validateObject.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Tree = any;
type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: Tree; data?: Record<string, string> };

const TOKENS = { secrets: { apiTokens: { existingSecret: 'scaleot-api-tokens' } } };

/** The value sets of issue #13 (each merged over values.yaml by helm). */
const VALUE_SETS: Record<string, unknown> = {
  defaults: TOKENS,
  'external Redis with TLS': { ...TOKENS, redis: { enabled: false }, externalRedis: { host: 'redis.internal', port: 6380, tls: true, existingSecret: 'redis-auth' } },
  'GPU group with routing': {
    ...TOKENS,
    routing: { defaultQueue: 'cpu', routes: { 'stage1.shard': 'gpu', 'stage1.rollout': 'gpu', tune: 'gpu' } },
    workerGroups: [
      { groupName: 'cpu', replicas: 1, threads: 2 },
      { groupName: 'gpu', replicas: 1, backend: 'auto', runtimeClassName: 'nvidia', resources: { requests: { cpu: '4', memory: '32Gi', 'nvidia.com/gpu': 1 }, limits: { memory: '32Gi', 'nvidia.com/gpu': 1 } }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] },
    ],
  },
  'KEDA on, GPU group at zero': {
    ...TOKENS,
    routing: { defaultQueue: 'cpu', routes: { tune: 'gpu-tune', 'stage1.shard': 'gpu-stage1', 'stage1.rollout': 'gpu-stage1' } },
    workerGroups: [
      { groupName: 'cpu', replicas: 1, minReplicas: 1, maxReplicas: 4, autoscaling: { enabled: true } },
      { groupName: 'gpu', replicas: 0, minReplicas: 0, maxReplicas: 2, queues: ['gpu-stage1', 'gpu-tune'], autoscaling: { enabled: true, cooldownPeriod: 0, targetQueueDepthPerReplica: 2 } },
    ],
  },
  'ServiceMonitor on': { ...TOKENS, serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } } },
  existingClaim: { ...TOKENS, storage: { existingClaim: 'models-rwx' } },
  'CURVE from an existing Secret': { ...TOKENS, secrets: { ...TOKENS.secrets, curve: { enabled: true, existingSecret: 'scaleot-curve' } } },
  'Ingress with TLS': { ...TOKENS, ingress: { enabled: true, className: 'nginx', host: 'api.example.com', tlsSecretName: 'api-tls' }, service: { type: 'LoadBalancer' } },
  'docs production values': 'docs/examples/values-production.yaml',
  'operator tokens from a Secret': { ...TOKENS, secrets: { ...TOKENS.secrets, operatorTokens: { existingSecret: 'scaleot-operator-tokens' } } },
  'CURVE and NetworkPolicies off': { ...TOKENS, secrets: { ...TOKENS.secrets, curve: { enabled: false } }, networkPolicy: { enabled: false } },
};

let dir: string;
const rendered = new Map<string, K8sObject[]>();

async function valuesFile(name: string, values: unknown): Promise<string> {
  if (typeof values === 'string') return join(ROOT, values);
  const file = join(dir, `${createHash('sha1').update(name).digest('hex')}.yaml`);
  await writeFile(file, stringify(values));
  return file;
}

async function render(values: unknown, release = 'scaleot', extra: string[] = []): Promise<{ code: number; objects: K8sObject[]; stderr: string }> {
  const file = await valuesFile(JSON.stringify(values) + release, values);
  const result = await helm(['template', release, CHART, '--namespace', 'ml', '-f', file, ...extra]);
  const objects = result.code === 0 ? parseAllDocuments(result.stdout).map((d) => d.toJS() as K8sObject).filter(Boolean) : [];
  return { code: result.code, objects, stderr: result.stderr };
}

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const env = (container: Tree, name: string): string | undefined => container.env?.find((e: Tree) => e.name === name)?.value;
const podSpecs = (objects: K8sObject[]) => objects.filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind)).map((o) => ({ object: o, pod: o.spec.template.spec }));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaleot-helm-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('helm binary', () => {
  it(`is helm ${HELM_VERSION} with the pinned sha256`, async () => {
    const binary = ensureHelm();
    expect(createHash('sha256').update(await readFile(binary)).digest('hex')).toBe(HELM_SHA256);
    expect((await helm(['version', '--short'])).stdout).toMatch(/^v3\.17\.2\+/);
  });
});

describe('helm/scaleot with nothing downloaded', () => {
  it('has no chart dependencies and packages without a charts/ directory', async () => {
    expect(read(join(CHART, 'Chart.yaml'))).not.toMatch(/^dependencies:/m);
    const out = await helm(['package', CHART, '--destination', dir]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/scaleot-\d+\.\d+\.\d+\.tgz/);
  });

  for (const [name, values] of Object.entries(VALUE_SETS)) {
    describe(`value set: ${name}`, () => {
      it('passes helm lint --strict', async () => {
        const out = await helm(['lint', '--strict', CHART, '--namespace', 'ml', '-f', await valuesFile(`lint ${name}`, values)]);
        expect(out.code, out.stdout + out.stderr).toBe(0);
        expect(out.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
      });

      it('renders objects that validate strictly against the Kubernetes and CRD schemas', async () => {
        const { code, objects, stderr } = await render(values);
        expect(code, stderr).toBe(0);
        rendered.set(name, objects);
        expect(objects.length).toBeGreaterThan(5);
        const problems: string[] = [];
        for (const object of objects) for (const p of await validateObject(object)) problems.push(`${object.kind} ${object.metadata.name}: ${p}`);
        expect(problems).toEqual([]);
        const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
        expect(new Set(names).size).toBe(names.length);
      });

      it('gives every pod resources and no service-account token unless it calls the API', () => {
        const objects = rendered.get(name)!;
        for (const { object, pod } of podSpecs(objects)) {
          const needsApi = object.kind === 'Job' && object.metadata.name.endsWith('curve-keygen');
          expect(pod.automountServiceAccountToken, `${object.kind} ${object.metadata.name}`).toBe(needsApi);
          for (const c of pod.containers) expect(c.resources?.requests?.memory ?? c.resources?.requests?.cpu, `${object.metadata.name}/${c.name} has no requests (BestEffort)`).toBeDefined();
        }
      });

      it('scales each group on exactly the queues its workers consume, and every routed queue has consumers', () => {
        const objects = rendered.get(name)!;
        const deployments = new Map(byKind(objects, 'Deployment').map((d) => [d.metadata.name, d]));
        const consumed = new Set<string>();
        for (const d of deployments.values()) {
          if (d.metadata.labels?.['app.kubernetes.io/component'] !== 'worker') continue;
          const queues = env(d.spec.template.spec.containers[0], 'SCALEOT_QUEUE_NAMES');
          expect(queues, d.metadata.name).toMatch(/^[a-z0-9-]+(,[a-z0-9-]+)*$/);
          for (const q of queues!.split(',')) consumed.add(q);
        }
        for (const so of byKind(objects, 'ScaledObject')) {
          const target = deployments.get(so.spec.scaleTargetRef.name);
          expect(target, so.metadata.name).toBeDefined();
          expect(target!.spec.replicas, 'KEDA owns replicas').toBeUndefined();
          const query: string = so.spec.triggers[0].metadata.query;
          const selector = /scaleot_queue_depth\{queue=~"([^"]+)",namespace="ml"\}/.exec(query);
          expect(selector, query).not.toBeNull();
          const workerQueues = env(target!.spec.template.spec.containers[0], 'SCALEOT_QUEUE_NAMES')!.split(',');
          expect(selector![1].split('|').sort()).toEqual([...workerQueues].sort());
        }
        const coordinator = byKind(objects, 'Deployment').find((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'coordinator')!;
        const routes = env(coordinator.spec.template.spec.containers[0], 'SCALEOT_JOB_ROUTES')!;
        expect(routes).toMatch(/(^|,)\*=[a-z0-9-]+$/);
        for (const pair of routes.split(',')) expect(consumed, `route ${pair}`).toContain(pair.split('=')[1]);
      });

      it('exposes only the API: ZeroMQ and metrics Services stay ClusterIP', () => {
        const services = byKind(rendered.get(name)!, 'Service');
        for (const s of services) {
          const ports = s.spec.ports.map((p: Tree) => p.name);
          if (!s.metadata.name.endsWith('-api')) expect(s.spec.type ?? 'ClusterIP', s.metadata.name).toBe('ClusterIP');
          if (s.metadata.name.endsWith('-api')) expect(ports).toEqual(['http']);
        }
      });
    });
  }
});

describe('helm/scaleot specific promises', () => {
  it('renders its own Redis (AOF, noeviction, password from a Secret, PVC) and none with external Redis', () => {
    const own = rendered.get('defaults')!;
    const sts = byKind(own, 'StatefulSet')[0];
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('8Gi');
    const conf = byKind(own, 'ConfigMap').find((c) => c.metadata.name.endsWith('-redis'))!.data!['redis.conf'];
    expect(conf).toMatch(/^appendonly yes$/m);
    expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
    const redis = sts.spec.template.spec.containers[0];
    expect(redis.env.find((e: Tree) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef.name).toBe('scaleot-redis');
    expect(byKind(rendered.get('external Redis with TLS')!, 'StatefulSet')).toEqual([]);
    const cm = byKind(rendered.get('external Redis with TLS')!, 'ConfigMap')[0];
    expect(cm.data!.SCALEOT_REDIS_URL).toBe('rediss://redis.internal:6380');
  });

  it('keeps explicit zeros and false: terminationGracePeriodSeconds 0, cooldownPeriod 0, podDisruptionBudget off', async () => {
    const { code, objects, stderr } = await render({
      ...TOKENS,
      workerGroups: [
        { groupName: 'cpu', replicas: 1, terminationGracePeriodSeconds: 0, podDisruptionBudget: { enabled: false }, autoscaling: { enabled: true, cooldownPeriod: 0 }, maxReplicas: 2, minReplicas: 0 },
        { groupName: 'other', replicas: 1 },
      ],
    });
    expect(code, stderr).toBe(0);
    const cpu = byKind(objects, 'Deployment').find((d) => d.metadata.name.endsWith('worker-cpu'))!;
    expect(cpu.spec.template.spec.terminationGracePeriodSeconds).toBe(0);
    expect(byKind(objects, 'ScaledObject')[0].spec.cooldownPeriod).toBe(0);
    expect(byKind(objects, 'ScaledObject')[0].spec.minReplicaCount).toBe(0);
    expect(byKind(objects, 'PodDisruptionBudget').map((p) => p.metadata.name)).toEqual(['scaleot-worker-other']);
    // A group given in values without resources still gets the defaults and the topology spread.
    const other = byKind(objects, 'Deployment').find((d) => d.metadata.name.endsWith('worker-other'))!.spec.template.spec;
    expect(other.containers[0].resources.requests).toEqual({ cpu: '2', memory: '6Gi' });
    expect(other.topologySpreadConstraints[0]).toMatchObject({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'scaleot.io/worker-group': 'other' } } });
  });

  it('schedules GPU groups by nvidia.com/gpu resources and tolerations, without a GPU Operator node label', () => {
    const gpu = byKind(rendered.get('GPU group with routing')!, 'Deployment').find((d) => d.metadata.name.endsWith('worker-gpu'))!.spec.template.spec;
    expect(gpu.containers[0].resources.limits['nvidia.com/gpu']).toBe(1);
    expect(gpu.tolerations[0].key).toBe('nvidia.com/gpu');
    expect(gpu.nodeSelector).toBeUndefined();
    expect(gpu.runtimeClassName).toBe('nvidia');
  });

  it("caps a group's cores with SCALEOT_THREADS only where the group sets threads", () => {
    const workers = byKind(rendered.get('GPU group with routing')!, 'Deployment').filter((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'worker');
    const threads = Object.fromEntries(workers.map((d) => [d.metadata.labels!['scaleot.io/worker-group'], env(d.spec.template.spec.containers[0], 'SCALEOT_THREADS')]));
    expect(threads).toEqual({ cpu: '2', gpu: undefined });
    for (const d of byKind(rendered.get('defaults')!, 'Deployment')) expect(env(d.spec.template.spec.containers[0], 'SCALEOT_THREADS')).toBeUndefined();
  });

  it("mounts the operators' tokens Secret into the coordinator only when one is named (SCALEOT_OPERATOR_TOKENS_FILE)", async () => {
    const coordinatorPod = (objects: K8sObject[]) => byKind(objects, 'Deployment').find((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'coordinator')!.spec.template.spec;
    const pod = coordinatorPod(rendered.get('operator tokens from a Secret')!);
    const container = pod.containers[0];
    expect(env(container, 'SCALEOT_OPERATOR_TOKENS_FILE')).toBe('/etc/scaleot/operator-tokens/tokens.json');
    expect(container.volumeMounts).toContainEqual({ name: 'operator-tokens', mountPath: '/etc/scaleot/operator-tokens', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'operator-tokens', secret: { secretName: 'scaleot-operator-tokens', items: [{ key: 'tokens.json', path: 'tokens.json' }] } });
    // The file the variable names is the one the Secret volume holds.
    const mount = container.volumeMounts.find((m: Tree) => m.name === 'operator-tokens');
    const item = pod.volumes.find((v: Tree) => v.name === 'operator-tokens').secret.items[0];
    expect(`${mount.mountPath}/${item.path}`).toBe(env(container, 'SCALEOT_OPERATOR_TOKENS_FILE'));
    // Workers never get it; without a Secret named, nothing of it renders.
    for (const d of byKind(rendered.get('operator tokens from a Secret')!, 'Deployment').filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'worker')) {
      expect(env(d.spec.template.spec.containers[0], 'SCALEOT_OPERATOR_TOKENS_FILE')).toBeUndefined();
      expect(JSON.stringify(d.spec.template.spec.volumes ?? [])).not.toContain('operator-tokens');
    }
    const plain = coordinatorPod(rendered.get('defaults')!);
    expect(env(plain.containers[0], 'SCALEOT_OPERATOR_TOKENS_FILE')).toBeUndefined();
    expect(JSON.stringify(plain)).not.toContain('operator-tokens');
    // A custom key and path follow through; one directory for both Secrets is refused.
    const custom = await render({ ...TOKENS, secrets: { ...TOKENS.secrets, operatorTokens: { existingSecret: 'ops', key: 'ops.json', mountPath: '/etc/ops' } } });
    expect(custom.code, custom.stderr).toBe(0);
    expect(env(coordinatorPod(custom.objects).containers[0], 'SCALEOT_OPERATOR_TOKENS_FILE')).toBe('/etc/ops/ops.json');
    const clash = await render({ ...TOKENS, secrets: { ...TOKENS.secrets, operatorTokens: { existingSecret: 'ops', mountPath: '/etc/scaleot/api-tokens' } } });
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toContain('secrets.operatorTokens.mountPath must differ from secrets.apiTokens.mountPath');
  });

  it('gives long release names distinct object names within 63 characters', async () => {
    const release = 'a-very-long-release-name-for-the-offsite-tuning-clust';
    const { code, objects, stderr } = await render({ ...TOKENS, workerGroups: [{ groupName: 'cpu-large-memory', replicas: 1 }, { groupName: 'cpu-large-memory2', replicas: 1 }], routing: { defaultQueue: 'cpu-large-memory' } }, release);
    expect(code, stderr).toBe(0);
    const names = byKind(objects, 'Deployment').map((d) => d.metadata.name);
    expect(new Set(names).size).toBe(3);
    for (const o of objects) expect(o.metadata.name.length, o.metadata.name).toBeLessThanOrEqual(63);
  });

  it('refuses to route jobs to a queue no worker group consumes', async () => {
    const { code, stderr } = await render({ ...TOKENS, routing: { defaultQueue: 'cpu', routes: { tune: 'gpu' } } });
    expect(code).not.toBe(0);
    expect(stderr).toContain('routing sends jobs to queue "gpu" but no workerGroups entry consumes it');
  });

  it('turns CURVE on by default: keygen hook, server secret only in the coordinator, worker keys allow-listed', () => {
    const objects = rendered.get('defaults')!;
    const job = byKind(objects, 'Job')[0];
    expect(job.metadata.annotations!['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const [coordinator, worker] = ['coordinator', 'worker'].map((c) => byKind(objects, 'Deployment').find((d) => d.metadata.labels?.['app.kubernetes.io/component'] === c)!.spec.template.spec.containers[0]);
    const names = (c: Tree) => c.env.map((e: Tree) => e.name);
    expect(names(coordinator)).toEqual(expect.arrayContaining(['SCALEOT_CURVE_SERVER_SECRET_KEY', 'SCALEOT_CURVE_SERVER_PUBLIC_KEY', 'SCALEOT_CURVE_CLIENT_PUBLIC_KEYS']));
    expect(names(worker)).toEqual(expect.arrayContaining(['SCALEOT_CURVE_SERVER_PUBLIC_KEY', 'SCALEOT_CURVE_CLIENT_PUBLIC_KEY', 'SCALEOT_CURVE_CLIENT_SECRET_KEY']));
    expect(names(worker)).not.toContain('SCALEOT_CURVE_SERVER_SECRET_KEY');
    expect(byKind(rendered.get('CURVE from an existing Secret')!, 'Job')).toEqual([]);
    expect(names(byKind(rendered.get('CURVE and NetworkPolicies off')!, 'Deployment')[0].spec.template.spec.containers[0]).join()).not.toContain('CURVE');
  });

  it('limits ZeroMQ to the workers, Redis to the release, metrics to the monitoring namespace', () => {
    const policies = byKind(rendered.get('defaults')!, 'NetworkPolicy');
    const coordinator = policies.find((p) => p.metadata.name.endsWith('-coordinator'))!;
    const zmq = coordinator.spec.ingress.find((r: Tree) => r.ports.some((p: Tree) => p.port === 'zmq-params'));
    expect(zmq.from).toEqual([{ podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/component': 'worker', 'app.kubernetes.io/instance': 'scaleot' }) } }]);
    const metrics = coordinator.spec.ingress.find((r: Tree) => r.ports.some((p: Tree) => p.port === 'metrics'));
    expect(metrics.from[0].namespaceSelector.matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'monitoring' });
    const redis = policies.find((p) => p.metadata.name.endsWith('-redis'))!;
    expect(redis.spec.ingress[0].from[0].podSelector.matchExpressions[0]).toEqual({ key: 'app.kubernetes.io/instance', operator: 'In', values: ['scaleot'] });
  });

  it('lets pipeline stages and the coordinator reach each other: pod IPs advertised, ephemeral ports admitted', () => {
    const objects = rendered.get('defaults')!;
    const deployments = byKind(objects, 'Deployment');
    for (const component of ['coordinator', 'worker']) {
      const container = deployments.find((d) => d.metadata.labels?.['app.kubernetes.io/component'] === component)!.spec.template.spec.containers[0];
      expect(container.env.find((e: Tree) => e.name === 'SCALEOT_ADVERTISE_HOST')).toEqual({ name: 'SCALEOT_ADVERTISE_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    }
    const policies = byKind(objects, 'NetworkPolicy');
    const ephemeral = (policy: Tree) => policy.spec.ingress.find((r: Tree) => r.ports.some((p: Tree) => p.port === 1024 && p.endPort === 65535));
    const components = (rule: Tree) => rule.from.map((f: Tree) => f.podSelector.matchLabels['app.kubernetes.io/component']).sort();
    expect(components(ephemeral(policies.find((p) => p.metadata.name.endsWith('-coordinator'))!))).toEqual(['worker']);
    expect(components(ephemeral(policies.find((p) => p.metadata.name.endsWith('-worker'))!))).toEqual(['coordinator', 'worker']);
  });

  it('terminates TLS at the Ingress for the API Service only', () => {
    const ingress = byKind(rendered.get('Ingress with TLS')!, 'Ingress')[0];
    expect(ingress.spec.tls).toEqual([{ hosts: ['api.example.com'], secretName: 'api-tls' }]);
    expect(ingress.spec.rules[0].http.paths[0].backend.service.name).toBe('scaleot-api');
    const lb = byKind(rendered.get('Ingress with TLS')!, 'Service').filter((s) => s.spec.type === 'LoadBalancer');
    expect(lb.map((s) => s.metadata.name)).toEqual(['scaleot-api']);
  });

  it('the strict validation catches unknown fields in rendered objects (it can fail)', async () => {
    const objects = rendered.get('KEDA on, GPU group at zero')!;
    const deployment = structuredClone(byKind(objects, 'Deployment')[1]);
    deployment.spec.template.spec.topologySpreadConstraint = [];
    expect(await validateObject(deployment)).toEqual(['/spec/template/spec/topologySpreadConstraint: unknown field']);
    const scaled = structuredClone(byKind(objects, 'ScaledObject')[0]);
    scaled.spec.minReplicas = 0;
    scaled.spec.triggers[0].metadata.query = 5;
    const problems = await validateObject(scaled);
    expect(problems).toContain('/spec/minReplicas: unknown field');
    expect(problems.some((p) => p.startsWith('/spec/triggers/0/metadata/query: type'))).toBe(true);
  });
});
