import { readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { encodeTensorData, type SafetensorsFile } from '@scaleot/checkpoint';
import { loadModel, openModelCheckpoint, type CausalLM, type OpenedModel } from '@scaleot/model';
import { applyAdapter, isAdapterTensor, readAdapter, type LoadedAdapter } from './adapterArtifact.js';
import { writeArtifactDir, type ArtifactFile } from './artifactDir.js';
import { AdapterMismatchError } from './OffsiteError.js';
import { sourceModelInfo } from './sourceModel.js';

export const PLUGIN_RECORD = 'scaleot-plugin.json';

export interface PlugInOptions {
  /** The full model the adapter's emulator was cut from (HF dir). */
  modelDir: string;
  adapterDir: string;
  /** Where the plugged HF checkpoint goes (must not exist or be empty, unless overwrite). */
  outDir: string;
  /** Accept an adapter whose source hash differs (e.g. the same model re-saved in another dtype). Default false. */
  allowSourceMismatch?: boolean;
  overwrite?: boolean;
}

export interface PlugInResult {
  outDir: string;
  /** HF names of the tensors replaced by adapter weights. */
  replaced: string[];
  /** Source shard files written (same names and tensor layout as the source). */
  files: string[];
}

/**
 * The model owner's side: the tuned adapter blocks replace the blocks at the same indices of the full
 * model. The output is an HF checkpoint with the source's files, shards, tensor names, order, shapes
 * and dtypes; every non-adapter tensor is a raw byte copy of the source's, adapter tensors are stored in
 * the source's dtype. Nothing is written when the adapter does not fit the model.
 */
export async function plugIn(opts: PlugInOptions): Promise<PlugInResult> {
  const modelDir = resolve(opts.modelDir);
  const adapter = await readAdapter(opts.adapterDir);
  const opened = await openModelCheckpoint(modelDir);
  try {
    const replaced = await checkAdapterAgainstModel(modelDir, opened, adapter, opts.allowSourceMismatch ?? false);
    const shards = opened.checkpoint.shards();
    const canonicalOf = new Map([...opened.names].map(([canonical, stored]) => [stored, canonical]));
    const files: ArtifactFile[] = shards.map((shard) => ({ name: basename(shard.path), write: (fh) => writePluggedShard(fh, shard, canonicalOf, adapter) }));
    for (const entry of await readdir(modelDir)) {
      if (entry.endsWith('.safetensors') || entry.startsWith('.') || entry === PLUGIN_RECORD || !(await stat(join(modelDir, entry))).isFile()) continue;
      files.push({ name: entry, copyFrom: join(modelDir, entry) });
    }
    const record = {
      format: 'scaleot.plugin',
      version: 1,
      sourceModel: await sourceModelInfo(modelDir),
      adapter: { sourceModel: adapter.manifest.sourceModel, method: adapter.manifest.method, adapter: adapter.manifest.adapter, createdAt: adapter.manifest.createdAt },
      replaced,
      createdAt: new Date().toISOString(),
    };
    files.push({ name: PLUGIN_RECORD, chunks: [Buffer.from(`${JSON.stringify(record, null, 2)}\n`)] });
    await writeArtifactDir(opts.outDir, files, { overwrite: opts.overwrite });
    return { outDir: resolve(opts.outDir), replaced, files: shards.map((s) => basename(s.path)) };
  } finally {
    await opened.checkpoint.close();
  }
}

/** Names, shapes and source hash: every adapter tensor must be a same-shaped parameter of the model, covering the adapter blocks. */
async function checkAdapterAgainstModel(modelDir: string, opened: OpenedModel, adapter: LoadedAdapter, allowSourceMismatch: boolean): Promise<string[]> {
  const where = adapter.dir;
  const { checkpoint, config, names } = opened;
  if (adapter.manifest.sourceModel.modelType !== config.modelType) {
    throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the adapter was tuned for a ${adapter.manifest.sourceModel.modelType} model, this is a ${config.modelType}; plug it into the model its emulator was cut from`, { where });
  }
  for (const [name, t] of adapter.tensors) {
    const stored = names.get(name);
    if (!stored) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the model has no tensor "${name}"; this adapter was made for another model`, { where });
    const shape = checkpoint.info(stored).shape;
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new AdapterMismatchError('ADAPTER_SHAPE_MISMATCH', `"${name}" is [${t.shape}] in the adapter but [${shape}] in the model; this adapter was made for another model`, { where });
    }
  }
  const idx = [...adapter.manifest.adapter.bottom, ...adapter.manifest.adapter.top];
  const missing = [...names.keys()].filter((n) => isAdapterTensor(n, idx, config.modelType) && !adapter.tensors.has(n));
  if (missing.length > 0) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the adapter lacks ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ' …' : ''} of its own blocks`, { where });
  const source = await sourceModelInfo(modelDir);
  if (!allowSourceMismatch && source.sha256 !== adapter.manifest.sourceModel.sha256) {
    throw new AdapterMismatchError(
      'ADAPTER_SOURCE_MISMATCH',
      `the adapter was tuned on an emulator of model ${adapter.manifest.sourceModel.sha256.slice(0, 12)}…, this model is ${source.sha256.slice(0, 12)}…; plug it into the model its emulator was cut from (or pass allowSourceMismatch for a re-saved copy of it)`,
      { where },
    );
  }
  return [...adapter.tensors.keys()];
}

async function writePluggedShard(fh: FileHandle, shard: SafetensorsFile, canonicalOf: Map<string, string>, adapter: LoadedAdapter): Promise<void> {
  // The source's header bytes verbatim: same keys, order and data offsets, so every tensor keeps its
  // dtype and byte length; adapter tensors are re-encoded in the stored dtype, the rest copied raw.
  await fh.write(await shard.headerBytes());
  const entries = shard.names().map((name) => shard.info(name));
  let at = 0;
  for (const e of entries) {
    const [begin, end] = e.dataOffsets;
    // A source with gaps between tensors keeps them (zero-filled), so every offset stays valid.
    if (begin > at) await fh.write(new Uint8Array(begin - at));
    at = Math.max(at, end);
    const canonical = canonicalOf.get(e.name);
    const t = canonical === undefined ? undefined : adapter.tensors.get(canonical);
    await fh.write(t ? encodeTensorData({ name: e.name, dtype: e.dtype, shape: e.shape, data: t.data }, shard.path) : await shard.readRaw(e.name));
  }
}

/** The plugged model in memory: the full model with the adapter's weights (float32) copied in. */
export async function plugInModel(modelDir: string, adapterDir: string): Promise<CausalLM> {
  const adapter = await readAdapter(adapterDir);
  const model = await loadModel(modelDir);
  try {
    applyAdapter(model, adapter);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
