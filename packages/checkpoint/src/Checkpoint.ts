import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import { elementCount } from './dtypes.js';
import { readConfigJson } from './modelConfig.js';
import type { ParameterSpec } from './modelTypes.js';
import { SafetensorsFile, type TensorInfo } from './SafetensorsFile.js';
import { validateParameters, type TensorNaming } from './validateParameters.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** A shard name from an index must be a plain file name inside the checkpoint directory. */
function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\]/.test(name) && name === basename(name);
}

/**
 * A Hugging Face model directory: config.json plus model.safetensors, or
 * model.safetensors.index.json plus its shards (when both exist, model.safetensors wins, as in
 * transformers). Every shard header is validated at open; tensors are read on demand.
 * Tensor names are the stored ones; once `validate` has mapped them, lookups also accept the canonical
 * names (`transformer.h.0…` for a bare `h.0…`). What the config means is the model family's business.
 */
export class Checkpoint {
  readonly dir: string;
  /** config.json as read (a JSON object), and its path. */
  readonly rawConfig: Record<string, unknown>;
  readonly configFile: string;
  /** model.safetensors or the index file: what the checkpoint's tensor list comes from. */
  readonly weightsFile: string;
  private readonly files: SafetensorsFile[];
  private readonly byName: Map<string, SafetensorsFile>;
  /** Canonical name → stored name and the family's naming (set by `validate`), so either prefix form finds a tensor. */
  private byCanonical = new Map<string, string>();
  private naming: TensorNaming | undefined;

  private constructor(dir: string, config: { raw: Record<string, unknown>; file: string }, weightsFile: string, files: SafetensorsFile[], byName: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.rawConfig = config.raw;
    this.configFile = config.file;
    this.weightsFile = weightsFile;
    this.files = files;
    this.byName = byName;
  }

  static async open(dir: string): Promise<Checkpoint> {
    const root = resolve(dir);
    let isDir: boolean;
    try {
      isDir = (await stat(root)).isDirectory();
    } catch (cause) {
      throw new CheckpointError('NOT_A_CHECKPOINT', root, 'does not exist; pass a model directory (config.json + model.safetensors or a sharded index).', { cause });
    }
    if (!isDir) {
      throw new CheckpointError('NOT_A_CHECKPOINT', root, 'is not a directory; pass the model directory that holds config.json and the weights, not a file.');
    }
    const config = await readConfigJson(root);
    const single = join(root, SINGLE_FILE_NAME);
    const index = join(root, INDEX_FILE_NAME);
    if (await isFile(single)) {
      const file = await SafetensorsFile.open(single);
      return new Checkpoint(root, config, single, [file], new Map(file.names().map((n) => [n, file])));
    }
    if (await isFile(index)) {
      const { files, byName } = await openSharded(index, root);
      return new Checkpoint(root, config, index, files, byName);
    }
    throw new CheckpointError(
      'NOT_A_CHECKPOINT',
      root,
      `has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}; save the model with save_pretrained (safetensors) or writeCheckpoint.`,
    );
  }

  /** Stored tensor names, shard by shard (shard-name order), each in storage order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.resolveName(name) !== undefined;
  }

  info(name: string): TensorInfo {
    const [stored, file] = this.lookup(name);
    return file.info(stored);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const [stored, file] = this.lookup(name);
    return file.readFloat32(stored);
  }

  /** readFloat32 into `out` without allocating (see SafetensorsFile.readFloat32Into); returns the filled prefix. */
  async readFloat32Into(name: string, out: Float32Array): Promise<Float32Array> {
    const [stored, file] = this.lookup(name);
    return file.readFloat32Into(stored, out);
  }

  async readRaw(name: string): Promise<Uint8Array> {
    const [stored, file] = this.lookup(name);
    return file.readRaw(stored);
  }

  async readInt64(name: string): Promise<BigInt64Array> {
    const [stored, file] = this.lookup(name);
    return file.readInt64(stored);
  }

  /** Sum of element counts over all stored tensors; × 4 is the size once loaded as float32 (what memory benchmarks compare against). */
  totalElements(): number {
    let n = 0;
    for (const [name, file] of this.byName) n += elementCount(file.info(name).shape);
    return n;
  }

  /** The opened weight files, in shard-name order (one for a single-file checkpoint). */
  shards(): readonly SafetensorsFile[] {
    return this.files;
  }

  /** Tensor-data bytes read from every shard so far (headers excluded). */
  get bytesRead(): number {
    return this.files.reduce((n, f) => n + f.bytesRead, 0);
  }

  /** The shard files, in shard-name order (one for a single-file checkpoint). */
  shardFiles(): string[] {
    return this.files.map((f) => f.path);
  }

  /**
   * Checks the stored tensors against the parameters a config implies (`specs` and `naming` come from
   * the model family): every parameter present with the right shape and a float dtype, nothing extra,
   * buffers ignored, a tied head optional and checked when present. Returns canonical name → stored
   * name, and from then on lookups accept canonical names.
   */
  validate(specs: ParameterSpec[], naming: TensorNaming, described?: string): Map<string, string> {
    const map = validateParameters(
      specs,
      naming,
      this.names().map((name) => this.byName.get(name)!.info(name)),
      this.weightsFile,
      described,
    );
    this.byCanonical = map;
    this.naming = naming;
    return map;
  }

  /** The file that stores a tensor (stored or canonical name). */
  fileOf(name: string): SafetensorsFile {
    return this.lookup(name)[1];
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private resolveName(name: string): string | undefined {
    if (this.byName.has(name)) return name;
    return this.byCanonical.get(this.naming ? this.naming.canonicalName(name) : name);
  }

  private lookup(name: string): [string, SafetensorsFile] {
    const stored = this.resolveName(name);
    if (stored === undefined) {
      throw new CheckpointError('MISSING_TENSOR', this.weightsFile, `has no tensor "${name}" (see names() for the ${this.byName.size} stored ones).`, { tensor: name });
    }
    return [stored, this.byName.get(stored)!];
  }
}

async function openSharded(index: string, root: string): Promise<{ files: SafetensorsFile[]; byName: Map<string, SafetensorsFile> }> {
  const bad = (message: string, tensor?: string) =>
    new CheckpointError('BAD_INDEX', index, `${message} Re-export the checkpoint (save_pretrained or writeCheckpoint) or fix the index by hand.`, { tensor });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(index, 'utf8'));
  } catch (cause) {
    throw new CheckpointError('BAD_INDEX', index, `is not valid JSON (${(cause as Error).message}). Re-export the checkpoint or fix the index.`, { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('is not a JSON object.');
  const weightMap = (parsed as Record<string, unknown>).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw bad('has no "weight_map" object (tensor name → shard file).');
  }
  const entries = Object.entries(weightMap as Record<string, unknown>);
  if (entries.length === 0) throw bad('has an empty "weight_map".');
  const shardOf = new Map<string, string>();
  for (const [name, shard] of entries) {
    if (typeof shard !== 'string' || !isPlainFileName(shard)) {
      throw bad(`maps "${name}" to ${JSON.stringify(shard)}; shard names must be plain file names in the checkpoint directory.`, name);
    }
    shardOf.set(name, shard);
  }
  const shardNames = [...new Set(shardOf.values())].sort();
  for (const shard of shardNames) {
    const path = join(root, shard);
    if (!(await isFile(path))) {
      const example = [...shardOf].find(([, s]) => s === shard)![0];
      throw new CheckpointError(
        'MISSING_SHARD',
        path,
        `does not exist, but ${basename(index)} maps tensors to it (e.g. "${example}"). Copy or re-download the missing shard.`,
        { tensor: example },
      );
    }
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) files.push(await SafetensorsFile.open(join(root, shard)));
    const byName = new Map<string, SafetensorsFile>();
    for (const file of files) {
      for (const name of file.names()) {
        const previous = byName.get(name);
        if (previous) {
          throw new CheckpointError(
            'DUPLICATE_TENSOR',
            file.path,
            `tensor "${name}" is also stored in ${basename(previous.path)}; each tensor must live in one shard. Remove one copy.`,
            { tensor: name },
          );
        }
        byName.set(name, file);
      }
    }
    for (const [name, shard] of shardOf) {
      const holder = byName.get(name);
      if (!holder || basename(holder.path) !== shard) {
        throw bad(`maps "${name}" to ${shard}, but ${holder ? `it is stored in ${basename(holder.path)}` : 'no shard holds it'}.`, name);
      }
    }
    return { files, byName };
  } catch (err) {
    await Promise.all(files.map((f) => f.close().catch(() => undefined)));
    throw err;
  }
}
