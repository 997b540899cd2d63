import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Checkpoint, CONFIG_FILE_NAME } from '@scaleot/checkpoint';
import { parseModelConfig } from '@scaleot/model';

/** Identity of the checkpoint an emulator or adapter was cut from. */
export interface SourceModelInfo {
  /**
   * sha256 over `config.json` and every safetensors file: hex digest of the sha256sum-style lines
   * `"<sha256 of file>  <file name>\n"` sorted by file name.
   */
  sha256: string;
  modelType: string;
  nLayer: number;
  /** Width of the residual stream (the normalised config's hiddenSize; the field keeps its manifest name). */
  nEmbd: number;
}

/** config.json and the safetensors files of a model dir (the index's shards, or model.safetensors), by name. */
async function modelFiles(dir: string): Promise<{ config: Record<string, unknown>; configFile: string; files: string[] }> {
  const ckpt = await Checkpoint.open(dir);
  try {
    return { config: ckpt.rawConfig, configFile: ckpt.configFile, files: [CONFIG_FILE_NAME, ...ckpt.shardFiles().map((f) => basename(f))] };
  } finally {
    await ckpt.close();
  }
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
    for (const f of (await modelFiles(dir)).files) {
      const s = await stat(join(dir, f));
      parts.push(`${f}:${s.size}:${s.mtimeMs}`);
    }
  } catch {
    parts.push(String(Math.random())); // unreadable: no caching, let the hash report the error
  }
  return parts.join('|');
}

async function computeSourceModelInfo(dir: string): Promise<SourceModelInfo> {
  const { config: raw, configFile, files } = await modelFiles(dir);
  const config = parseModelConfig(raw, configFile);
  const lines: string[] = [];
  for (const f of [...files].sort()) lines.push(`${await sha256File(join(dir, f))}  ${f}\n`);
  const sha256 = createHash('sha256').update(lines.join('')).digest('hex');
  return { sha256, modelType: config.modelType, nLayer: config.nLayer, nEmbd: config.hiddenSize };
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
