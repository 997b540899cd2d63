import { atomicWriteJson, InvalidInputError, tempPathFor } from '@scaleot/core';
import { copyFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './Checkpoint.js';
import { asConfigObject } from './modelConfig.js';
import type { ParameterSpec } from './modelTypes.js';
import { validateParameters, type TensorNaming } from './validateParameters.js';
import { checkMetadata, prepareTensors, writePrepared, type PreparedTensor, type WriteTensor } from './writeSafetensors.js';

/** 2 GiB: checkpoints with fewer tensor bytes are written as one model.safetensors. */
export const DEFAULT_MAX_SHARD_BYTES = 2 ** 31;

export interface WriteCheckpointOptions {
  /** Raw HF config.json content, written as config.json (must be a JSON object: BAD_CONFIG). */
  config: Record<string, unknown>;
  /**
   * The parameters the config implies and how the family names them (from `@scaleot/model`'s family
   * map). When given, shards follow module order and the tensors are validated against them (as
   * Checkpoint.validate); without them tensors are stored in natural name order, unchecked.
   */
  parameters?: { specs: ParameterSpec[]; naming: TensorNaming };
  /**
   * Largest sum of tensor bytes in one shard (headers not counted, as in transformers). Default
   * 2 GiB ({@link DEFAULT_MAX_SHARD_BYTES}): a smaller model is one model.safetensors, a larger one
   * model-0000K-of-0000N.safetensors + model.safetensors.index.json. Tensors fill shards greedily
   * in module order; a tensor larger than the limit gets a shard of its own.
   */
  maxShardBytes?: number;
  /** Absolute paths of files copied in beside the weights (tokenizer.json, …). Default: none. */
  extraFiles?: string[];
  /** safetensors metadata for every weight file; `format: "pt"` is added unless given (transformers requires it). */
  metadata?: Record<string, string>;
}

const RESERVED = /^(config\.json|model\.safetensors(\.index\.json)?|model-\d+-of-\d+\.safetensors)$/;

function shardName(k: number, n: number): string {
  const pad = (v: number) => String(v).padStart(5, '0');
  return `model-${pad(k)}-of-${pad(n)}.safetensors`;
}

/** "h.2" before "h.10". */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true }) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Module order (the config's parameter list), then anything else in natural name order. */
function moduleOrder(parameters: WriteCheckpointOptions['parameters'], tensors: PreparedTensor[]): PreparedTensor[] {
  const rank = new Map((parameters?.specs ?? []).map((s, i) => [s.name, i]));
  const keyed = tensors.map((t) => ({ t, r: rank.get(parameters ? parameters.naming.canonicalName(t.name) : t.name) ?? Infinity }));
  keyed.sort((a, b) => a.r - b.r || (a.r === Infinity ? naturalCompare(a.t.name, b.t.name) : 0));
  return keyed.map((k) => k.t);
}

/** Greedy split, the transformers / huggingface_hub rule: start a new shard when the next tensor would overflow. */
function planShards(ordered: PreparedTensor[], maxBytes: number): PreparedTensor[][] {
  const shards: PreparedTensor[][] = [];
  let current: PreparedTensor[] = [];
  let size = 0;
  for (const t of ordered) {
    if (current.length > 0 && size + t.byteLength > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.byteLength;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

async function existing(path: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Only a checkpoint (or an empty directory) may be replaced: a wrong path must not wipe user data. */
async function checkReplaceable(target: string): Promise<boolean> {
  const st = await existing(target);
  if (!st) return false;
  if (!st.isDirectory()) {
    throw new CheckpointError('NOT_A_CHECKPOINT', target, 'exists and is not a directory; refusing to replace it with a checkpoint. Choose another path or remove it.');
  }
  const entries = await readdir(target);
  if (entries.length > 0 && !entries.some((e) => e === 'config.json' || e.endsWith('.safetensors') || e === INDEX_FILE_NAME)) {
    throw new CheckpointError(
      'NOT_A_CHECKPOINT',
      target,
      'exists and does not look like a checkpoint (no config.json or .safetensors files); refusing to replace it. Choose another path or empty it.',
    );
  }
  return true;
}

async function checkExtraFiles(extraFiles: readonly string[]): Promise<void> {
  const names = new Set<string>();
  for (const file of extraFiles) {
    if (typeof file !== 'string' || !isAbsolute(file)) {
      throw new InvalidInputError(`extraFiles entry ${JSON.stringify(file)} must be an absolute path.`, { where: 'writeCheckpoint.extraFiles' });
    }
    const name = basename(file);
    if (RESERVED.test(name) || names.has(name)) {
      throw new InvalidInputError(`extraFiles entry ${file} would overwrite ${name} in the checkpoint; drop it (config and weights come from the other arguments).`, {
        where: 'writeCheckpoint.extraFiles',
      });
    }
    names.add(name);
    if (!(await existing(file))?.isFile()) {
      throw new InvalidInputError(`extraFiles entry ${file} is not an existing file; check the source directory.`, { where: 'writeCheckpoint.extraFiles' });
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes a checkpoint directory: config.json, model.safetensors (or shards + index) and any extra
 * files. Everything is validated first, then written into a temp directory beside `dir` and renamed
 * into place; an existing checkpoint at `dir` is moved aside and removed only after the new one is
 * in place (restored if that rename fails). Invalid input leaves nothing on disk.
 */
export async function writeCheckpoint(dir: string, tensors: WriteTensor[], options: WriteCheckpointOptions): Promise<void> {
  const target = resolve(dir);
  asConfigObject(options.config, join(target, 'config.json'));
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new InvalidInputError(`maxShardBytes must be a positive integer, got ${String(options.maxShardBytes)}.`, { where: 'writeCheckpoint.maxShardBytes' });
  }
  const metadata = checkMetadata(join(target, SINGLE_FILE_NAME), { format: 'pt', ...options.metadata });
  const prepared = prepareTensors(join(target, SINGLE_FILE_NAME), tensors);
  const shards = planShards(moduleOrder(options.parameters, prepared), maxShardBytes);
  const fileNames = shards.length === 1 ? [SINGLE_FILE_NAME] : shards.map((_, i) => shardName(i + 1, shards.length));
  if (options.parameters) {
    const stored = shards.flatMap((shard, i) => shard.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, file: join(target, fileNames[i]) })));
    validateParameters(options.parameters.specs, options.parameters.naming, stored, shards.length === 1 ? join(target, SINGLE_FILE_NAME) : join(target, INDEX_FILE_NAME));
  }
  await checkExtraFiles(options.extraFiles ?? []);
  const replacing = await checkReplaceable(target);

  await mkdir(dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  await mkdir(temp);
  try {
    for (let i = 0; i < shards.length; i++) await writePrepared(join(temp, fileNames[i]), shards[i], metadata);
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const entries = shards.flatMap((shard, i) => shard.map((t) => [t.name, fileNames[i]] as const));
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      for (const [name, file] of entries) weightMap[name] = file;
      const totalSize = prepared.reduce((sum, t) => sum + t.byteLength, 0);
      await atomicWriteJson(join(temp, INDEX_FILE_NAME), { metadata: { total_size: totalSize }, weight_map: weightMap });
    }
    await atomicWriteJson(join(temp, 'config.json'), options.config);
    for (const file of options.extraFiles ?? []) await copyFile(file, join(temp, basename(file)));
    await syncDir(temp);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }

  if (!replacing) {
    try {
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  } else {
    const aside = tempPathFor(target).replace(/\.tmp$/, '.old');
    try {
      await rename(target, aside);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
    try {
      await rename(temp, target);
    } catch (err) {
      await rename(aside, target).catch(() => undefined);
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
    await rm(aside, { recursive: true, force: true });
  }
  await syncDir(dirname(target));
}
