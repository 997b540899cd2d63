import { createHash } from 'node:crypto';

/**
 * Deterministic fuzz cases for the coordinator's HTTP API, adapter uploads and ZeroMQ frames, shared by
 * the fuzz test (in-process) and `npm run soak` (against running processes).
 */

/** xorshift32: the same seed gives the same cases. */
export class FuzzRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export interface HttpCase {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** What the case mutates (reports). */
  label: string;
}

type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; required?: string[]; enum?: unknown[]; minimum?: number; maximum?: number; exclusiveMaximum?: number; items?: JsonSchema; additionalProperties?: boolean | JsonSchema };
type OpenApi = { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema: JsonSchema }> } }>> };

const WEIRD_STRINGS = ['', ' ', '\u0000', 'null', '../../etc/passwd', '%2e%2e%2f', '😀'.repeat(50), '\u202e\u0041\u0042', 'a'.repeat(10_000), '<script>alert(1)</script>', "' OR 1=1 --", '${jndi:ldap://x}', '\ud800', 'req-0000000000000000'];
const WEIRD_NUMBERS = [0, -1, 1, 0.999999, 1e308, -1e308, 2 ** 53 + 1, -0, 1e-320, 12, 4096, Number.MAX_SAFE_INTEGER];

/** A value the schema accepts (the first enum value, the minimum, a short string). */
export function sampleOf(schema: JsonSchema | undefined, rng: FuzzRng): unknown {
  if (!schema) return null;
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(schema.properties ?? {})) if ((schema.required ?? []).includes(key) || rng.next() < 0.5) out[key] = key === 'task' ? 'moby' : sampleOf(child, rng);
      return out;
    }
    case 'array':
      return [sampleOf(schema.items, rng)];
    case 'integer':
      return schema.minimum ?? 1;
    case 'number':
      return schema.minimum ?? 0.5;
    case 'boolean':
      return true;
    case 'string':
      return 'sotu-gpt2-tiny';
    default:
      return null;
  }
}

function deepNest(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** One mutation of a JSON value: wrong types, huge numbers, unicode, extra keys, removed keys. */
export function mutate(value: unknown, rng: FuzzRng): unknown {
  const kind = rng.int(8);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const obj = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(obj);
    if (kind === 0 && keys.length) delete obj[rng.pick(keys)];
    else if (kind === 1) obj[rng.pick(WEIRD_STRINGS).slice(0, 64) || 'x'] = rng.pick(WEIRD_NUMBERS);
    else if (keys.length) {
      const key = rng.pick(keys);
      obj[key] = mutate(obj[key], rng);
    }
    return obj;
  }
  switch (kind) {
    case 0:
      return rng.pick(WEIRD_STRINGS);
    case 1:
      return rng.pick(WEIRD_NUMBERS);
    case 2:
      return null;
    case 3:
      return [value, value];
    case 4:
      return { nested: value };
    case 5:
      return typeof value === 'number' ? String(value) : true;
    case 6:
      return typeof value === 'number' ? value * -1e6 : rng.pick(WEIRD_STRINGS);
    default:
      return rng.pick(WEIRD_NUMBERS);
  }
}

/**
 * At least `count` HTTP cases from the API's OpenAPI document: every path and method, with valid-ish
 * and mutated bodies, bad and missing tokens, bad headers and paths, deep nesting, oversized bodies.
 */
export function httpCases(doc: OpenApi, token: string, ids: string[], count: number, seed = 1): HttpCase[] {
  const rng = new FuzzRng(seed);
  const cases: HttpCase[] = [];
  const routes = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));
  const auth = () => rng.pick([`Bearer ${token}`, `Bearer ${token}`, `Bearer ${token}`, '', 'Bearer', `Basic ${token}`, `Bearer ${'x'.repeat(8000)}`, `Bearer ${token}\u0000`, 'Bearer 😀']);
  const fillPath = (path: string) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(name === 'name' ? rng.pick(['emulator.json', 'adapter.json', '..', '../../etc/passwd', '%00', 'a'.repeat(300), '😀']) : rng.pick([...ids, ...ids, 'req-nope', '..', '%2e%2e', 'a'.repeat(200), '😀', ' ', 'req-' + '0'.repeat(16)])),
    );
  while (cases.length < count) {
    const route = rng.pick(routes);
    const schema = route.op.requestBody?.content?.['application/json']?.schema;
    const base = sampleOf(schema, rng);
    const r = rng.int(12);
    const headers: Record<string, string> = {};
    const a = auth();
    if (a) headers.authorization = a.replace(/[^\t\x20-\x7e]/g, '?');
    let body: string | Buffer | undefined;
    let label = 'mutated body';
    if (route.method === 'GET' || route.method === 'DELETE') {
      if (r === 0) {
        body = '{"a":1}';
        headers['content-type'] = 'application/json';
        label = 'GET with a body';
      } else label = 'path';
    } else if (r === 0) {
      body = deepNest(rng.pick([100, 1000, 50_000]));
      headers['content-type'] = 'application/json';
      label = 'deep nesting';
    } else if (r === 1) {
      body = Buffer.alloc(rng.pick([(1 << 20) + 1, 3 << 20]), 0x41);
      headers['content-type'] = rng.pick(['application/json', 'application/x-tar']);
      label = 'oversized body';
    } else if (r === 2) {
      body = rng.bytes(rng.int(2048));
      headers['content-type'] = rng.pick(['application/json', 'application/x-tar', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'garbage/\u00ff'.replace(/[^\x20-\x7e]/g, '?')]);
      label = 'random bytes';
    } else if (r === 3) {
      body = JSON.stringify(base);
      headers['content-type'] = 'application/json';
      label = 'valid-ish body';
    } else {
      let value = base;
      for (let i = 0, n = 1 + rng.int(3); i < n; i++) value = mutate(value, rng);
      body = JSON.stringify(value) ?? 'null';
      headers['content-type'] = 'application/json';
    }
    let url = fillPath(route.path);
    if (rng.int(10) === 0) url += rng.pick(['?x=1', '/..', '//', '?' + 'q'.repeat(5000), '#frag', '/%00', '/extra']);
    cases.push({ method: rng.int(20) === 0 ? rng.pick(['PATCH', 'OPTIONS', 'PUT', 'POST']) : route.method, url, headers, body, label });
  }
  return cases;
}

/** A ustar header for one entry (valid checksum), `type` '0' file, '2' symlink, '1' hard link, '5' dir. */
export function tarHeader(name: string, size: number, type = '0', link = ''): Buffer {
  const header = Buffer.alloc(512);
  header.write(name.slice(0, 100), 0, 100, 'utf8');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.write('00000000000\0', 136, 12, 'ascii');
  header.write('        ', 148, 8, 'ascii');
  header.write(type, 156, 1, 'ascii');
  header.write(link.slice(0, 100), 157, 100, 'utf8');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

export function tarOf(entries: { name: string; data?: Buffer; type?: string; link?: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    parts.push(tarHeader(e.name, data.length, e.type, e.link), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A safetensors file with a given header (JSON text) and payload. */
export function safetensorsWith(header: string, payload: Buffer, declaredLength?: number): Buffer {
  const h = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declaredLength ?? h.length));
  return Buffer.concat([len, h, payload]);
}

export interface UploadCase {
  label: string;
  body: Buffer;
}

/**
 * At least `count` malformed adapter uploads built around a valid adapter's files: truncated and
 * oversized tars, links, absolute and `..` paths, duplicate names, bad safetensors headers and dtypes,
 * manifests that lie.
 */
export function uploadCases(valid: { manifest: Buffer; weights: Buffer }, count: number, seed = 7): UploadCase[] {
  const rng = new FuzzRng(seed);
  const good = tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'adapter.safetensors', data: valid.weights }]);
  const headerLen = Number(valid.weights.readBigUInt64LE(0));
  const header = JSON.parse(valid.weights.subarray(8, 8 + headerLen).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const payload = valid.weights.subarray(8 + headerLen);
  const firstTensor = Object.keys(header).find((k) => k !== '__metadata__')!;
  const withHeader = (change: (h: typeof header) => void) => {
    const h = JSON.parse(JSON.stringify(header)) as typeof header;
    change(h);
    return tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'adapter.safetensors', data: safetensorsWith(JSON.stringify(h), payload) }]);
  };
  const manifest = JSON.parse(valid.manifest.toString()) as Record<string, unknown>;
  const withManifest = (change: (m: Record<string, unknown>) => void) => {
    const m = JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>;
    change(m);
    return tarOf([{ name: 'adapter.json', data: Buffer.from(JSON.stringify(m)) }, { name: 'adapter.safetensors', data: valid.weights }]);
  };
  const makers: [string, () => Buffer][] = [
    ['truncated tar', () => good.subarray(0, 1 + rng.int(good.length - 1))],
    ['tar with a flipped byte', () => {
      const copy = Buffer.from(good);
      copy[rng.int(Math.min(copy.length, 4096))] ^= 1 + rng.int(255);
      return copy;
    }],
    ['random bytes', () => rng.bytes(rng.int(4096))],
    ['empty body', () => Buffer.alloc(0)],
    ['only end-of-archive blocks', () => Buffer.alloc(1024)],
    ['symlink entry', () => tarOf([{ name: 'adapter.json', type: '2', link: rng.pick(['/etc/passwd', '../../../../tmp/x', 'adapter.safetensors']) }, { name: 'adapter.safetensors', data: valid.weights }])],
    ['hard link entry', () => tarOf([{ name: 'adapter.json', type: '1', link: '/etc/shadow' }])],
    ['absolute path', () => tarOf([{ name: rng.pick(['/tmp/adapter.json', '/etc/cron.d/x', '/adapter.json']), data: valid.manifest }])],
    ['dot-dot path', () => tarOf([{ name: rng.pick(['../adapter.json', '../../x/adapter.json', 'a/../../adapter.json', '..']), data: valid.manifest }, { name: 'adapter.safetensors', data: valid.weights }])],
    ['duplicate names', () => tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'dir/adapter.json', data: Buffer.from('{}') }, { name: 'adapter.safetensors', data: valid.weights }])],
    ['device entry', () => tarOf([{ name: 'adapter.json', type: rng.pick(['3', '4', '6', '7']) }])],
    ['bad file name', () => tarOf([{ name: rng.pick(['.hidden', 'a b.json', 'adapter.json\u0000x', '-x', 'adapter.json;rm']), data: valid.manifest }])],
    ['missing weights', () => tarOf([{ name: 'adapter.json', data: valid.manifest }])],
    ['missing manifest', () => tarOf([{ name: 'adapter.safetensors', data: valid.weights }])],
    ['header length beyond the file', () => tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'adapter.safetensors', data: safetensorsWith(JSON.stringify(header), payload, rng.pick([2 ** 40, payload.length * 10, 2 ** 53])) }])],
    ['header not JSON', () => tarOf([{ name: 'adapter.json', data: valid.manifest }, { name: 'adapter.safetensors', data: safetensorsWith('{"a": [1, 2', payload) }])],
    ['bad dtype', () => withHeader((h) => (h[firstTensor].dtype = rng.pick(['F99', 'I64', 'BOOL', '', 'f32'])))],
    ['offsets out of range', () => withHeader((h) => (h[firstTensor].data_offsets = [0, payload.length + 1 + rng.int(1 << 20)]))],
    ['negative shape', () => withHeader((h) => (h[firstTensor].shape = [-1, 4]))],
    ['shape disagreeing with bytes', () => withHeader((h) => (h[firstTensor].shape = [h[firstTensor].shape[0] + 1, ...h[firstTensor].shape.slice(1)]))],
    ['tensor renamed', () => withHeader((h) => {
      h['transformer.h.7.attn.c_attn.weight'] = h[firstTensor];
      delete h[firstTensor];
    })],
    ['manifest not JSON', () => tarOf([{ name: 'adapter.json', data: Buffer.from('{"format": "scaleot.adapter",') }, { name: 'adapter.safetensors', data: valid.weights }])],
    ['manifest wrong format', () => withManifest((m) => (m.format = rng.pick(['scaleot.emulator', 'x', 42])))],
    ['manifest lists other tensors', () => withManifest((m) => (m.tensors = ['transformer.h.0.nope']))],
    ['manifest deep nesting', () => tarOf([{ name: 'adapter.json', data: Buffer.from(deepNest(20_000)) }, { name: 'adapter.safetensors', data: valid.weights }])],
    ['manifest with another emulator hash', () => withManifest((m) => ((m.parameters as Record<string, Record<string, unknown>>).emulator.sha256 = createHash('sha256').update(String(rng.next())).digest('hex')))],
    ['many entries', () => tarOf(Array.from({ length: 1001 + rng.int(100) }, (_, i) => ({ name: `f${i}.bin`, data: Buffer.alloc(1) })))],
  ];
  const out: UploadCase[] = [];
  while (out.length < count) {
    const [label, make] = makers[out.length % makers.length];
    out.push({ label, body: make() });
  }
  return out;
}
