// Strict validation of rendered Kubernetes objects against the schemas the API server and the CRDs
// use. The validators are the ajv-compiled OpenAPI schemas shipped by kubernetes-models (Kubernetes
// 1.3x core API), @kubernetes-models/keda (ScaledObject CRD) and @kubernetes-models/prometheus-operator
// (ServiceMonitor CRD): types, enums, formats and required fields. Those schemas, like the API server
// by default, let unknown fields through (it prunes them silently), which hides typos such as
// `topologySpreadConstraint:`; so each object is validated through a Proxy that records which keys
// the schema looks at, and any key it never asks about is reported as unknown (what
// `kubectl --validate=strict` and `kubeconform -strict` do). Objects whose schema inspects no key
// (free-form maps such as labels, which the validator enumerates, or preserve-unknown-fields) are
// not second-guessed.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './deployChecks.js';

const require = createRequire(join(ROOT, 'package.json'));

type Validator = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string; keyword: string; params: unknown }> | null };

const MODULES: Record<string, string> = {
  'v1/ConfigMap': 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap',
  'v1/Secret': 'kubernetes-models/_schemas/IoK8sApiCoreV1Secret',
  'v1/Service': 'kubernetes-models/_schemas/IoK8sApiCoreV1Service',
  'v1/ServiceAccount': 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount',
  'v1/PersistentVolumeClaim': 'kubernetes-models/_schemas/IoK8sApiCoreV1PersistentVolumeClaim',
  'apps/v1/Deployment': 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment',
  'apps/v1/StatefulSet': 'kubernetes-models/_schemas/IoK8sApiAppsV1StatefulSet',
  'batch/v1/Job': 'kubernetes-models/_schemas/IoK8sApiBatchV1Job',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy',
  'networking.k8s.io/v1/Ingress': 'kubernetes-models/_schemas/IoK8sApiNetworkingV1Ingress',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/_schemas/IoK8sApiRbacV1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/_schemas/IoK8sApiRbacV1RoleBinding',
  'keda.sh/v1alpha1/ScaledObject': '@kubernetes-models/keda/_schemas/KedaShV1alpha1ScaledObject',
  'monitoring.coreos.com/v1/ServiceMonitor': '@kubernetes-models/prometheus-operator/_schemas/MonitoringCoreosComV1ServiceMonitor',
};

export const VALIDATED_KINDS = Object.keys(MODULES);

const cache = new Map<string, Validator>();

async function validatorFor(apiVersion: string, kind: string): Promise<Validator> {
  const key = `${apiVersion}/${kind}`;
  const module = MODULES[key];
  if (!module) throw new Error(`no schema for ${key}: add it to test/deploy/k8sSchemas.ts`);
  let validate = cache.get(key);
  if (!validate) {
    // By file URL: the CRD packages do not export their _schemas subpaths.
    const [pkg, ...rest] = module.startsWith('@') ? [module.split('/').slice(0, 2).join('/'), ...module.split('/').slice(2)] : [module.split('/')[0], ...module.split('/').slice(1)];
    const dir = dirname(require.resolve(`${pkg}/package.json`));
    validate = ((await import(pathToFileURL(join(dir, ...rest)).href + '.js')) as { validate: Validator }).validate;
    cache.set(key, validate);
  }
  return validate;
}

interface Seen {
  read: Set<string>;
  enumerated: boolean;
}

/** A deep proxy of `value` that records, per object path, which keys were read or whether keys were enumerated. */
function track(value: unknown, path: string, seen: Map<string, { target: object; seen: Seen }>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const record: Seen = { read: new Set(), enumerated: false };
  seen.set(path, { target: value, seen: record });
  const children = new Map<string, unknown>();
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== 'string') return v;
      record.read.add(key);
      if (v !== null && typeof v === 'object') {
        if (!children.has(key)) children.set(key, track(v, `${path}/${key}`, seen));
        return children.get(key);
      }
      return v;
    },
    has(target, key) {
      if (typeof key === 'string') record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Problems of one rendered object: schema errors, then unknown fields. Empty = valid. */
export async function validateObject(object: Record<string, unknown>): Promise<string[]> {
  const validate = await validatorFor(String(object.apiVersion), String(object.kind));
  const seen = new Map<string, { target: object; seen: Seen }>();
  const ok = validate(track(object, '', seen));
  const problems: string[] = [];
  if (!ok) for (const e of validate.errors ?? []) problems.push(`${e.instancePath || '/'}: ${e.keyword} ${e.message ?? JSON.stringify(e.params)}`);
  for (const [path, { target, seen: s }] of seen) {
    if (Array.isArray(target) || s.enumerated || s.read.size === 0) continue;
    for (const key of Object.keys(target)) if (!s.read.has(key)) problems.push(`${path}/${key}: unknown field`);
  }
  return problems;
}
