// `scaleot-coordinator curve-keygen`: the Helm chart's pre-install hook. Creates the Secret with the
// coordinator's and the workers' ZeroMQ CURVE keypairs (Z85) once; when it exists, changes nothing
// (upgrades keep the keys). Talks to the Kubernetes API with the pod's service-account token; the
// chart's Role allows creating Secrets and reading only this one.
import { readFileSync } from 'node:fs';
import { createLogger } from '@scaleot/core';
import { generateCurveKeyPair } from '@scaleot/transport';

const log = createLogger('curve-keygen');
const SA = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface CurveKeygenOptions {
  /** Kubernetes API base URL. Default `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`. */
  apiServer?: string;
  /** Bearer token. Default: the mounted service-account token. */
  token?: string;
  /** Default SCALEOT_CURVE_SECRET_NAMESPACE, else the pod's namespace. */
  namespace?: string;
  /** Default SCALEOT_CURVE_SECRET_NAME. */
  secretName?: string;
}

/** The Secret's data: two Z85 keypairs under the chart's default key names. */
export function curveSecretData(): Record<string, string> {
  const server = generateCurveKeyPair();
  const worker = generateCurveKeyPair();
  return { 'server-public-key': server.publicKey, 'server-secret-key': server.secretKey, 'worker-public-key': worker.publicKey, 'worker-secret-key': worker.secretKey };
}

/** Creates the Secret unless it exists; returns whether it created it. */
export async function runCurveKeygen(options: CurveKeygenOptions = {}): Promise<boolean> {
  const env = process.env;
  const apiServer = options.apiServer ?? `https://${env.KUBERNETES_SERVICE_HOST}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`;
  const token = options.token ?? readFileSync(`${SA}/token`, 'utf8').trim();
  const namespace = options.namespace ?? env.SCALEOT_CURVE_SECRET_NAMESPACE ?? readFileSync(`${SA}/namespace`, 'utf8').trim();
  const name = options.secretName ?? env.SCALEOT_CURVE_SECRET_NAME;
  if (!name) throw new Error('SCALEOT_CURVE_SECRET_NAME is not set: the Helm chart sets it to the Secret the keys go into');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const base = `${apiServer}/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  const existing = await fetch(`${base}/${encodeURIComponent(name)}`, { headers });
  if (existing.ok) {
    log.info({ secret: name, namespace }, 'CURVE Secret exists; keys unchanged');
    return false;
  }
  if (existing.status !== 404) throw new Error(`reading Secret ${namespace}/${name}: HTTP ${existing.status} ${await existing.text()}`);
  const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'scaleot' } }, type: 'Opaque', stringData: curveSecretData() };
  const created = await fetch(base, { method: 'POST', headers, body: JSON.stringify(body) });
  // 409: another run created it in between, which is as good.
  if (!created.ok && created.status !== 409) throw new Error(`creating Secret ${namespace}/${name}: HTTP ${created.status} ${await created.text()}`);
  log.info({ secret: name, namespace }, 'CURVE Secret created');
  return created.ok;
}
