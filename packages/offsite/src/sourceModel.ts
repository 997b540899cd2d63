import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { OffsiteError } from './OffsiteError.js';
import { modelWeightFiles } from './safetensorsRaw.js';

/** Identity of the checkpoint an emulator or adapter was cut from. */
export interface SourceModelInfo {
  /**
   * sha256 over `config.json` and every safetensors file: hex digest of the sha256sum-style lines
   * `"<sha256 of file>  <file name>\n"` sorted by file name.
   */
  sha256: string;
  modelType: string;
  nLayer: number;
  nEmbd: number;
}

const cache = new Map<string, Promise<SourceModelInfo>>();

/**
 * Hashes a HF model dir (streamed). Memoised per process on the directory and the size and mtime of
 * its files, so a pipeline hashes a large checkpoint once but a replaced checkpoint is hashed anew.
 */
export async function sourceModelInfo(dir: string): Promise<SourceModelInfo> {
  const key = await cacheKey(dir);
  let p = cache.get(key);
  if (!p) {
    p = computeSourceModelInfo(dir);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function cacheKey(dir: string): Promise<string> {
  const parts = [resolve(dir)];
  try {
    for (const f of ['config.json', ...(await modelWeightFiles(dir))]) {
      const s = await stat(join(dir, f));
      parts.push(`${f}:${s.size}:${s.mtimeMs}`);
    }
  } catch {
    parts.push(String(Math.random())); // unreadable: no caching, let the hash report the error
  }
  return parts.join('|');
}

async function computeSourceModelInfo(dir: string): Promise<SourceModelInfo> {
  const configPath = join(dir, 'config.json');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (cause) {
    throw new OffsiteError('MODEL_NOT_FOUND', 'cannot read config.json; pass a Hugging Face model directory', { where: dir, cause });
  }
  const files = ['config.json', ...(await modelWeightFiles(dir))].sort();
  const lines: string[] = [];
  for (const f of files) lines.push(`${await sha256File(join(dir, f))}  ${f}\n`);
  const sha256 = createHash('sha256').update(lines.join('')).digest('hex');
  const num = (...keys: string[]): number => {
    for (const k of keys) if (typeof config[k] === 'number') return config[k] as number;
    throw new OffsiteError('MODEL_CONFIG_INVALID', `config.json has no ${keys.join('/')}`, { where: configPath });
  };
  return {
    sha256,
    modelType: String(config.model_type ?? 'unknown'),
    nLayer: num('n_layer', 'num_hidden_layers'),
    nEmbd: num('n_embd', 'hidden_size'),
  };
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(h.digest('hex')));
  });
}
