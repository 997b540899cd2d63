import { join, resolve } from 'node:path';
import { encodeSafetensors, SafetensorsFile, type WriteTensor } from '@scaleot/checkpoint';
import { familyOf, type CausalLM } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { writeArtifactDir } from './artifactDir.js';
import { emulatorFingerprint } from './emulatorFingerprint.js';
import { ADAPTER_MANIFEST, ADAPTER_WEIGHTS, MANIFEST_VERSION, readManifest, validateManifest, type AdapterManifest, type EmulatorManifest, type LoraSpec } from './manifest.js';
import { AdapterMismatchError } from './OffsiteError.js';

/** Whether `name` is a tensor of an adapter block (`bottom` + `top`) of a model of `modelType`. */
export function isAdapterTensor(name: string, adapterIndices: readonly number[], modelType: string): boolean {
  const family = familyOf(modelType);
  const index = family.naming.blockIndex(family.naming.canonicalName(name));
  return index !== undefined && adapterIndices.includes(index);
}

/**
 * Writes an adapter artifact: `adapter.json` + `adapter.safetensors` (float32, HF names and original
 * layer indices of the adapter blocks, LoRA already merged). Atomic.
 */
export async function saveAdapter(
  outDir: string,
  emulator: EmulatorManifest,
  weights: Map<string, tf.Tensor>,
  info: { lora: LoraSpec | null; parameters: Record<string, unknown> },
  options: { overwrite?: boolean } = {},
): Promise<AdapterManifest> {
  const names = [...weights.keys()];
  const manifest = validateManifest(
    {
      format: 'scaleot.adapter',
      version: MANIFEST_VERSION,
      sourceModel: emulator.sourceModel,
      method: emulator.method,
      parameters: { emulator: { method: emulator.method, parameters: emulator.parameters, compression: emulator.compression, createdAt: emulator.createdAt, sha256: emulatorFingerprint(emulator) }, ...info.parameters },
      layerMap: emulator.layerMap,
      adapter: { ...emulator.adapter, lora: info.lora },
      tensors: names,
      createdAt: new Date().toISOString(),
    },
    'scaleot.adapter',
    join(outDir, ADAPTER_MANIFEST),
  ) as AdapterManifest;
  const idx = [...manifest.adapter.bottom, ...manifest.adapter.top];
  const tensors: WriteTensor[] = [];
  for (const [name, t] of weights) {
    if (!isAdapterTensor(name, idx, manifest.sourceModel.modelType)) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `"${name}" is not a tensor of an adapter block (${idx.join(',')})`, { where: name });
    tensors.push({ name, dtype: 'F32', shape: t.shape.slice(), data: (await t.data()) as Float32Array });
  }
  await writeArtifactDir(
    outDir,
    [
      { name: ADAPTER_MANIFEST, chunks: [Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)] },
      { name: ADAPTER_WEIGHTS, chunks: encodeSafetensors(tensors, { format: 'pt', scaleot: 'adapter' }, join(outDir, ADAPTER_WEIGHTS)) },
    ],
    options,
  );
  return manifest;
}

export interface LoadedAdapter {
  manifest: AdapterManifest;
  dir: string;
  /** float32 values and shapes by HF name. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Reads an adapter artifact; the manifest and the weights file must agree on the tensor list. */
export async function readAdapter(dir: string): Promise<LoadedAdapter> {
  const root = resolve(dir);
  const manifest = await readManifest(root, 'scaleot.adapter');
  const path = join(root, ADAPTER_WEIGHTS);
  const file = await SafetensorsFile.open(path);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  try {
    const stored = file.names().sort();
    const listed = [...manifest.tensors].sort();
    if (JSON.stringify(stored) !== JSON.stringify(listed)) {
      throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', 'adapter.safetensors holds other tensors than adapter.json lists; the artifact is corrupt', { where: path });
    }
    const idx = [...manifest.adapter.bottom, ...manifest.adapter.top];
    for (const name of stored) {
      if (!isAdapterTensor(name, idx, manifest.sourceModel.modelType)) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `"${name}" is not a tensor of an adapter block (${idx.join(',')})`, { where: path });
      tensors.set(name, { shape: file.info(name).shape, data: await file.readFloat32(name) });
    }
  } finally {
    await file.close();
  }
  return { manifest, dir: root, tensors };
}

/**
 * Copies an adapter's weights into a model (full model or emulator) in place. Every adapter tensor must
 * name a weight of the model with the same shape, and every weight of the adapter blocks must be
 * covered; otherwise AdapterMismatchError and the model is left untouched.
 */
export function applyAdapter(model: CausalLM, adapter: LoadedAdapter): void {
  const named = model.namedWeights();
  const idx = [...adapter.manifest.adapter.bottom, ...adapter.manifest.adapter.top];
  for (const [name, t] of adapter.tensors) {
    const v = named.get(name);
    if (!v) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the model has no weight "${name}"; the adapter was made for another model`, { where: adapter.dir });
    if (!tf.util.arraysEqual(v.shape, t.shape)) {
      throw new AdapterMismatchError('ADAPTER_SHAPE_MISMATCH', `"${name}" is [${t.shape}] in the adapter but [${v.shape}] in the model; the adapter was made for another model`, { where: adapter.dir });
    }
  }
  const missing = [...named.keys()].filter((n) => isAdapterTensor(n, idx, model.config.modelType) && !adapter.tensors.has(n));
  if (missing.length > 0) throw new AdapterMismatchError('ADAPTER_NAMES_MISMATCH', `the adapter lacks ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ' …' : ''}`, { where: adapter.dir });
  tf.tidy(() => {
    for (const [name, t] of adapter.tensors) named.get(name)!.assign(tf.tensor(t.data, t.shape, 'float32'));
  });
}
