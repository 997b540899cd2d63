import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { canonicalName, expectedParameters, readModelConfig } from '@scaleot/checkpoint';
import { loadModel, type CausalLM } from '@scaleot/model';
import { applyAdapter, isAdapterTensor, readAdapter, type LoadedAdapter } from './adapterArtifact.js';
import { writeArtifactDir, type ArtifactFile } from './artifactDir.js';
import { AdapterMismatchError } from './OffsiteError.js';
import { encodeFloats, encodeHeaderLike, modelWeightFiles, readRawHeader, type RawSafetensors } from './safetensorsRaw.js';
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
  const plan = await checkAdapterAgainstModel(modelDir, adapter, opts.allowSourceMismatch ?? false);
  const files: ArtifactFile[] = [];
  for (const header of plan.headers) {
    const name = header.path.slice(modelDir.length + 1);
    files.push({ name, write: (fh) => writePluggedShard(fh, header, plan.storedToCanonical, adapter) });
  }
  for (const entry of await readdir(modelDir)) {
    if (entry.endsWith('.safetensors') || entry.startsWith('.') || entry === PLUGIN_RECORD || !(await stat(join(modelDir, entry))).isFile()) continue;
    files.push({ name: entry, copyFrom: join(modelDir, entry) });
  }
  const record = {
    format: 'scaleot.plugin',
    version: 1,
    sourceModel: await sourceModelInfo(modelDir),
    adapter: { sourceModel: adapter.manifest.sourceModel, method: adapter.manifest.method, adapter: adapter.manifest.adapter, createdAt: adapter.manifest.createdAt },
    replaced: plan.replaced,
    createdAt: new Date().toISOString(),
  };
  files.push({ name: PLUGIN_RECORD, chunks: [Buffer.from(`${JSON.stringify(record, null, 2)}\n`)] });
  await writeArtifactDir(opts.outDir, files, { overwrite: opts.overwrite });
  return { outDir: resolve(opts.outDir), replaced: plan.replaced, files: plan.headers.map((h) => h.path.slice(modelDir.length + 1)) };
}

interface PlugPlan {
  headers: RawSafetensors[];
  storedToCanonical: Map<string, string>;
  replaced: string[];
}

/** Names, shapes and source hash: every adapter tensor must be a same-shaped tensor of the model, covering the adapter blocks. */
async function checkAdapterAgainstModel(modelDir: string, adapter: LoadedAdapter, allowSourceMismatch: boolean): Promise<PlugPlan> {
  const config = await readModelConfig(modelDir);
  const headers: RawSafetensors[] = [];
  for (const f of await modelWeightFiles(modelDir)) headers.push(await readRawHeader(join(modelDir, f)));
  const storedToCanonical = new Map<string, string>();
  const shapes = new Map<string, number[]>();
  for (const h of headers) {
    for (const e of h.entries) {
      const canonical = canonicalName(config, e.name);
      storedToCanonical.set(e.name, canonical);
      shapes.set(canonical, e.shape);
    }
  }
  const where = adapter.dir;
  for (const [name, t] of adapter.tensors) {
    const shape = shapes.get(name);
    if (!shape) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the model has no tensor "${name}"; this adapter was made for another model`, { where });
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new AdapterMismatchError('ADAPTER_SHAPE_MISMATCH', `"${name}" is [${t.shape}] in the adapter but [${shape}] in the model; this adapter was made for another model`, { where });
    }
  }
  const idx = [...adapter.manifest.adapter.bottom, ...adapter.manifest.adapter.top];
  const missing = expectedParameters(config)
    .map((p) => p.name)
    .filter((n) => isAdapterTensor(n, idx) && !adapter.tensors.has(n));
  if (missing.length > 0) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the adapter lacks ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ' …' : ''} of its own blocks`, { where });
  const source = await sourceModelInfo(modelDir);
  if (!allowSourceMismatch && source.sha256 !== adapter.manifest.sourceModel.sha256) {
    throw new AdapterMismatchError(
      'ADAPTER_SOURCE_MISMATCH',
      `the adapter was tuned on an emulator of model ${adapter.manifest.sourceModel.sha256.slice(0, 12)}…, this model is ${source.sha256.slice(0, 12)}…; plug it into the model its emulator was cut from (or pass allowSourceMismatch for a re-saved copy of it)`,
      { where },
    );
  }
  return { headers, storedToCanonical, replaced: [...adapter.tensors.keys()] };
}

async function writePluggedShard(fh: import('node:fs/promises').FileHandle, header: RawSafetensors, storedToCanonical: Map<string, string>, adapter: LoadedAdapter): Promise<void> {
  // Same header keys, order and data offsets as the source: every tensor keeps its dtype and byte length.
  const [lenBytes, headerBytes] = encodeHeaderLike(header);
  await fh.write(lenBytes);
  await fh.write(headerBytes);
  const src = await open(header.path, 'r');
  try {
    let at = 0;
    for (const e of [...header.entries].sort((a, b) => a.begin - b.begin)) {
      // A source with gaps between tensors keeps them (zero-filled), so every offset stays valid.
      if (e.begin > at) await fh.write(new Uint8Array(e.begin - at));
      at = Math.max(at, e.end);
      const t = adapter.tensors.get(storedToCanonical.get(e.name)!);
      let bytes: Uint8Array;
      if (t) {
        bytes = encodeFloats(t.data, e.dtype);
      } else {
        bytes = new Uint8Array(e.end - e.begin);
        await src.read(bytes, 0, bytes.length, header.dataStart + e.begin);
      }
      await fh.write(bytes);
    }
  } finally {
    await src.close();
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
