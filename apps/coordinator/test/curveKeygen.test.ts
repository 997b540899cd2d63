import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCurveKeygen } from '../src/curveKeygen.js';

// The chart's pre-install hook against a stand-in for the Kubernetes API: creates the CURVE Secret
// once, with two distinct Z85 keypairs, and leaves an existing one alone.
const secrets = new Map<string, { stringData: Record<string, string> }>();
const calls: string[] = [];
let url: string;
const server = createServer(async (req: IncomingMessage, res) => {
  calls.push(`${req.method} ${req.url} ${req.headers.authorization}`);
  const match = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(req.url ?? '');
  if (!match) return res.writeHead(404).end();
  if (req.method === 'GET') {
    const secret = secrets.get(`${match[1]}/${match[2]}`);
    return secret ? res.writeHead(200).end(JSON.stringify(secret)) : res.writeHead(404).end('{"reason":"NotFound"}');
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const parsed = JSON.parse(body) as { metadata: { name: string }; stringData: Record<string, string> };
  secrets.set(`${match[1]}/${parsed.metadata.name}`, parsed);
  res.writeHead(201).end(body);
});

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('scaleot-coordinator curve-keygen', () => {
  it('creates the Secret with the server and worker keypairs, then leaves it unchanged', async () => {
    const options = { apiServer: url, token: 'sa-token', namespace: 'ml', secretName: 'rel-scaleot-curve' };
    expect(await runCurveKeygen(options)).toBe(true);
    const data = secrets.get('ml/rel-scaleot-curve')!.stringData;
    expect(Object.keys(data).sort()).toEqual(['server-public-key', 'server-secret-key', 'worker-public-key', 'worker-secret-key']);
    for (const value of Object.values(data)) expect(value).toMatch(/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/);
    expect(new Set(Object.values(data)).size).toBe(4);
    expect(await runCurveKeygen(options)).toBe(false);
    expect(secrets.get('ml/rel-scaleot-curve')!.stringData).toEqual(data);
    expect(calls).toEqual([
      'GET /api/v1/namespaces/ml/secrets/rel-scaleot-curve Bearer sa-token',
      'POST /api/v1/namespaces/ml/secrets Bearer sa-token',
      'GET /api/v1/namespaces/ml/secrets/rel-scaleot-curve Bearer sa-token',
    ]);
  });

  it('fails with the API status when the API refuses', async () => {
    await expect(runCurveKeygen({ apiServer: `${url}/nope`, token: 't', namespace: 'ml', secretName: 's' })).rejects.toThrow(/HTTP 404/);
  });
});
