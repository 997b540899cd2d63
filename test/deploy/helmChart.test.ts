import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import {
  CHART,
  checkValueRefs,
  collectValueRefs,
  listFiles,
  loadYaml,
  mergeValues,
  read,
} from './deployChecks.js';

const values = loadYaml<Record<string, unknown>>(join(CHART, 'values.yaml'));
const schema = JSON.parse(read(join(CHART, 'values.schema.json'))) as Record<string, unknown>;
const templates = listFiles(join(CHART, 'templates'), '');

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  return ajv.compile(schema);
}

describe('helm/scaleot Chart.yaml', () => {
  const chart = loadYaml<Record<string, unknown>>(join(CHART, 'Chart.yaml'));

  it('is a v2 application chart with a semver version and nothing to fetch', () => {
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'scaleot', type: 'application' });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(String(chart.appVersion)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart.dependencies).toBeUndefined();
  });
});

describe('helm/scaleot values', () => {
  it('values.yaml validates against values.schema.json', () => {
    const validate = validator();
    expect(validate(values), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('accepts a GPU worker group with KEDA, external Redis, CURVE keys and an existing claim', () => {
    const validate = validator();
    const gpu = mergeValues(values, {
      redis: { enabled: false },
      externalRedis: { host: 'redis.internal', port: 6380, tls: true, existingSecret: 'redis-auth' },
      secrets: { apiTokens: { existingSecret: 'scaleot-api-tokens' }, curve: { enabled: true, existingSecret: 'scaleot-curve' } },
      routing: { defaultQueue: 'eval', routes: { 'stage1.shard': 'stage1', tune: 'stage2' } },
      storage: { existingClaim: 'models-rwx' },
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      workerGroups: [
        { groupName: 'cpu', replicas: 2, minReplicas: 1, maxReplicas: 8, queues: ['eval'], autoscaling: { enabled: true } },
        {
          groupName: 'gpu',
          replicas: 0,
          minReplicas: 0,
          maxReplicas: 4,
          backend: 'auto',
          image: { repository: 'ghcr.io/scaleot/worker-gpu', tag: '0.1.0' },
          resources: { requests: { cpu: '4', memory: '32Gi', 'nvidia.com/gpu': 1 }, limits: { 'nvidia.com/gpu': 1 } },
          nodeSelector: { 'nvidia.com/gpu.present': 'true' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          queues: ['stage1', 'stage2'],
          runtimeClassName: 'nvidia',
          autoscaling: { enabled: true, targetQueueDepthPerReplica: 2 },
        },
      ],
    });
    expect(validate(gpu), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['an unknown backend', { workerGroups: [{ groupName: 'cpu', replicas: 1, backend: 'cuda' }] }, /backend/],
    ['a worker group without groupName', { workerGroups: [{ replicas: 1 }] }, /groupName/],
    ['a worker group name that is not a DNS label', { workerGroups: [{ groupName: 'GPU_1', replicas: 1 }] }, /groupName/],
    ['negative replicas', { workerGroups: [{ groupName: 'cpu', replicas: -1 }] }, /replicas/],
    ['no worker groups', { workerGroups: [] }, /workerGroups/],
    ['a misspelt top-level key', { workerGroup: [{ groupName: 'cpu', replicas: 1 }] }, /workerGroup/],
    ['a misspelt coordinator key', { coordinator: { nodeSelectors: { pool: 'a' } } }, /nodeSelectors/],
    ['an invalid pull policy', { image: { pullPolicy: 'Sometimes' } }, /pullPolicy/],
    ['a GPU count that is not a quantity', { workerGroups: [{ groupName: 'gpu', replicas: 1, resources: { limits: { 'nvidia.com/gpu': 'one' } } }] }, /nvidia\.com~1gpu/],
    ['external Redis without a host', { redis: { enabled: false }, externalRedis: { host: '' } }, /host/],
    ['a toleration with an unknown effect', { coordinator: { tolerations: [{ key: 'a', effect: 'Sometimes' }] } }, /effect/],
  ];
  for (const [label, override, where] of invalid) {
    it(`rejects ${label}`, () => {
      const validate = validator();
      expect(validate(mergeValues(values, override))).toBe(false);
      expect(JSON.stringify(validate.errors)).toMatch(where);
    });
  }
});

describe('helm/scaleot templates', () => {
  it('has the templates the chart promises', () => {
    const names = templates.map((t) => t.split('/').pop());
    for (const expected of [
      '_helpers.tpl',
      'NOTES.txt',
      'configmap.yaml',
      'coordinator-deployment.yaml',
      'coordinator-service.yaml',
      'worker-deployments.yaml',
      'pvc.yaml',
      'pdb.yaml',
      'servicemonitor.yaml',
      'worker-scaledobjects.yaml',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it('have balanced control structures (every if/with/range/define closed by an end)', () => {
    for (const file of templates) {
      let depth = 0;
      for (const m of read(file).matchAll(/\{\{-?\s*(if|with|range|define|end)\b/g)) {
        depth += m[1] === 'end' ? -1 : 1;
        expect(depth, `${file}: unexpected end`).toBeGreaterThanOrEqual(0);
      }
      expect(depth, `${file}: unclosed block`).toBe(0);
    }
  });

  it('reference only values that values.yaml (or, for list entries, values.schema.json) defines', () => {
    const refs = templates.flatMap((file) => collectValueRefs(read(file), file.split('/').pop()!));
    // The checker saw the scopes it is meant to check.
    expect(refs.some((r) => r.path.join('.') === 'workerGroups.[].runtimeClassName')).toBe(true);
    expect(refs.some((r) => r.path.join('.') === 'coordinator.podSecurityContext')).toBe(true);
    expect(refs.some((r) => r.path.join('.') === 'image.repository')).toBe(true);
    expect(checkValueRefs(refs, values, schema)).toEqual([]);
  });

  it('the value checker flags missing values, in plain paths and in range scopes', () => {
    const template = [
      '{{- $c := .Values.coordinator }}',
      '{{ $c.nodeSelectr }} {{ .Values.imag.tag }} {{ $.Values.image.tagg }}',
      '{{- range $g := .Values.workerGroups }}{{ $g.gpuCount }}{{ $g.maxReplicas }}{{- end }}',
    ].join('\n');
    const problems = checkValueRefs(collectValueRefs(template, 'bad.yaml'), values, schema);
    expect(problems).toEqual([
      'bad.yaml: .Values.coordinator.nodeSelectr is not defined in values.yaml',
      'bad.yaml: .Values.imag.tag is not defined in values.yaml',
      'bad.yaml: .Values.image.tagg is not defined in values.yaml',
      'bad.yaml: .Values.workerGroups[].gpuCount is not in values.schema.json',
    ]);
  });

  it('wire probes, graceful shutdown and secrets by reference into the pods', () => {
    const coordinator = read(join(CHART, 'templates/coordinator-deployment.yaml'));
    const workers = read(join(CHART, 'templates/worker-deployments.yaml'));
    for (const [name, text] of [['coordinator', coordinator], ['workers', workers]] as const) {
      for (const key of ['livenessProbe:', 'readinessProbe:', 'lifecycle:', 'terminationGracePeriodSeconds:', 'securityContext:']) {
        expect(text, `${name} ${key}`).toContain(key);
      }
      expect(text, name).toContain('include "scaleot.sharedEnv"');
      // Secret material only ever arrives through secretKeyRef / secret volumes.
      expect(text, name).not.toMatch(/PASSWORD\s*\n\s*value:/);
    }
    expect(coordinator).toContain('SCALEOT_CURVE_SERVER_SECRET_KEY');
    expect(workers).not.toContain('SCALEOT_CURVE_SERVER_SECRET_KEY');
    expect(coordinator).toContain('secretName: {{ required');
    expect(read(join(CHART, 'values.yaml'))).toMatch(/nvidia\.com\/gpu/);
  });

  it('scale worker groups on scaleot_queue_depth through Prometheus, explaining why not the redis trigger', () => {
    const scaled = read(join(CHART, 'templates/worker-scaledobjects.yaml'));
    expect(scaled).toContain('type: prometheus');
    expect(scaled).toContain('scaleot_queue_depth{');
    expect(scaled).toMatch(/prioritized/);
    expect(scaled).toMatch(/delayed/);
    expect(scaled).toMatch(/LLEN|list length/);
    expect(scaled).not.toMatch(/type:\s*redis/);
    expect(scaled).toContain('$group.minReplicas');
    expect(scaled).toContain('$group.maxReplicas');
  });
});
