import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encodeSafetensors, SafetensorsFile, type WriteTensor } from '@scaleot/checkpoint';
import { createModel, familyOf, ParamFactory, readModelConfig, type BlockModule, type CausalLM, type ModelConfig } from '@scaleot/model';
import type * as tf from '@tensorflow/tfjs';
import { writeArtifactDir, type ArtifactFile } from './artifactDir.js';
import { blockKindFactory } from './blockKinds.js';
import { adapterLayout, type AdapterLayoutOptions } from './layout.js';
import {
  EMULATOR_MANIFEST,
  EMULATOR_WEIGHTS,
  MANIFEST_VERSION,
  readManifest,
  validateManifest,
  type AdapterPlacement,
  type EmulatorManifest,
  type LayerAssignment,
} from './manifest.js';
import { OffsiteError } from './OffsiteError.js';
import { sourceModelInfo } from './sourceModel.js';

/** Files copied from the source model into every artifact that needs to tokenize or rebuild the config. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json'];

/** Float32 values with their shape. */
export interface ShapedArray {
  shape: number[];
  data: Float32Array;
}

/** The description half of an emulator (its manifest minus the bookkeeping fields). */
export interface EmulatorSpec {
  method: string;
  parameters: Record<string, unknown>;
  layerMap: LayerAssignment[];
  adapter: AdapterPlacement;
  compression: Record<string, unknown>;
}

/** A layer map for a LayerDrop-style emulator: adapters, kept middle blocks raw, the rest dropped. */
export function layerDropMap(nLayer: number, adapter: AdapterLayoutOptions, keptMiddle: number[]): { layerMap: LayerAssignment[]; placement: AdapterPlacement } {
  const layout = adapterLayout(nLayer, adapter);
  const adapterIdx = new Set([...layout.bottom, ...layout.top]);
  const layerMap: LayerAssignment[] = [];
  for (let i = 0; i < nLayer; i++) layerMap.push(adapterIdx.has(i) ? 'adapter' : keptMiddle.includes(i) ? 'raw' : 'dropped');
  return { layerMap, placement: { nAdapter: adapterIdx.size, bottom: layout.bottom, top: layout.top, lora: null } };
}

/**
 * Writes an emulator artifact: `emulator.json` + `model.safetensors` (float32, original HF names and
 * layer indices; only what the data owner receives: embeddings, final norm, adapter blocks, kept and
 * replacement modules) + the source's config.json and tokenizer files. Atomic; nothing is written when
 * a check fails. `weights` must hold every tensor the layer map needs.
 */
export async function saveEmulator(outDir: string, sourceModelDir: string, spec: EmulatorSpec, weights: Map<string, tf.Tensor | ShapedArray>, options: { overwrite?: boolean } = {}): Promise<EmulatorManifest> {
  const config = await readModelConfig(sourceModelDir);
  const source = await sourceModelInfo(sourceModelDir);
  const manifest = validateManifest(
    {
      format: 'scaleot.emulator',
      version: MANIFEST_VERSION,
      sourceModel: source,
      method: spec.method,
      parameters: spec.parameters,
      layerMap: spec.layerMap,
      adapter: spec.adapter,
      compression: spec.compression,
      createdAt: new Date().toISOString(),
    },
    'scaleot.emulator',
    join(outDir, EMULATOR_MANIFEST),
  ) as EmulatorManifest;
  const wanted = emulatorTensorNames(config, manifest, weights);
  const tensors: WriteTensor[] = [];
  for (const name of wanted) {
    const t = weights.get(name)!;
    const values = 'data' in t && t.data instanceof Float32Array ? t.data : ((await (t as tf.Tensor).data()) as Float32Array);
    tensors.push({ name, dtype: 'F32', shape: t.shape.slice(), data: values });
  }
  const files: ArtifactFile[] = [
    { name: EMULATOR_MANIFEST, chunks: [Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)] },
    { name: EMULATOR_WEIGHTS, chunks: encodeSafetensors(tensors, { format: 'pt', scaleot: 'emulator' }, join(outDir, EMULATOR_WEIGHTS)) },
    ...copiedModelFiles(sourceModelDir),
  ];
  await writeArtifactDir(outDir, files, options);
  return manifest;
}

/** config.json and tokenizer files of a model dir, for copying into an artifact. */
export function copiedModelFiles(modelDir: string): ArtifactFile[] {
  return ['config.json', ...TOKENIZER_FILES].filter((f) => existsSync(join(modelDir, f))).map((f) => ({ name: f, copyFrom: join(modelDir, f) }));
}

/** The parameters outside the blocks (embeddings, final norm, untied head), by HF name. */
export function stemParameterNames(config: ModelConfig): string[] {
  const family = familyOf(config);
  return family
    .expectedParameters(config)
    .filter((p) => family.naming.blockIndex(p.name) === undefined)
    .map((p) => p.name);
}

/** Names an emulator stores: the stem, every non-dropped original block, and any replacement module's tensors. */
function emulatorTensorNames(config: ModelConfig, manifest: EmulatorManifest, weights: Map<string, unknown>): string[] {
  const naming = familyOf(config).naming;
  const names: string[] = [];
  manifest.layerMap.forEach((entry, i) => {
    if (entry === 'adapter' || entry === 'raw') {
      const block = [...weights.keys()].filter((n) => naming.blockIndex(n) === i);
      if (block.length === 0) throw new OffsiteError('MISSING_TENSOR', `no weights for block ${i}, which the layer map keeps`, { where: naming.blockPrefix(i) });
      names.push(...block);
    } else if (typeof entry === 'object') {
      const ref = entry.replacedBy.ref;
      const mod = [...weights.keys()].filter((n) => n === ref || n.startsWith(`${ref}.`));
      names.push(...mod);
    }
  });
  names.unshift(...stemParameterNames(config));
  for (const n of names) {
    if (!weights.has(n)) throw new OffsiteError('MISSING_TENSOR', `emulator weights lack "${n}"`, { where: n });
  }
  return names;
}

/** An emulator ready to run: a CausalLM whose block list follows the layer map (dropped blocks absent). */
export interface LoadedEmulator {
  model: CausalLM;
  manifest: EmulatorManifest;
  config: ModelConfig;
  dir: string;
}

/** Reads and validates an emulator artifact and builds its model (float32, trainable variables). */
export async function loadEmulator(dir: string): Promise<LoadedEmulator> {
  const root = resolve(dir);
  const manifest = await readManifest(root, 'scaleot.emulator');
  const config = await readModelConfig(root);
  if (config.nLayer !== manifest.sourceModel.nLayer || config.hiddenSize !== manifest.sourceModel.nEmbd || config.modelType !== manifest.sourceModel.modelType) {
    throw new OffsiteError(
      'EMULATOR_CONFIG_MISMATCH',
      `config.json (${config.modelType}, ${config.nLayer} blocks of width ${config.hiddenSize}) disagrees with the manifest's source model (${manifest.sourceModel.modelType}, ${manifest.sourceModel.nLayer} of width ${manifest.sourceModel.nEmbd})`,
      { where: root },
    );
  }
  const file = await SafetensorsFile.open(join(root, EMULATOR_WEIGHTS));
  const weights = new Map<string, Float32Array>();
  try {
    for (const name of file.names()) weights.set(name, await file.readFloat32(name));
  } finally {
    await file.close();
  }
  const model = buildEmulatorModel(config, manifest.layerMap, weights, root);
  return { model, manifest, config, dir: root };
}

/**
 * Builds the emulator's CausalLM: embeddings and final norm from `weights`, then one block-list entry
 * per non-dropped layer-map entry, in original order, each keeping its original index (HF names).
 */
export function buildEmulatorModel(config: ModelConfig, layerMap: LayerAssignment[], weights: Map<string, Float32Array>, where = 'emulator'): CausalLM {
  // A zero-block model carries the stem; the blocks are built from their own tensors.
  const family = familyOf(config);
  const shell = new Map<string, Float32Array>();
  for (const n of stemParameterNames(config)) {
    const w = weights.get(n);
    if (!w) throw new OffsiteError('MISSING_TENSOR', `emulator weights lack "${n}"`, { where });
    shell.set(n, w);
  }
  const model = createModel({ ...config, nLayer: 0 }, shell);
  const params = new ParamFactory(weights, 0, true);
  const blocks: BlockModule[] = [];
  try {
    layerMap.forEach((entry, i) => {
      if (entry === 'dropped') return;
      if (entry === 'adapter' || entry === 'raw') blocks.push(family.createBlock(i, config, params));
      else blocks.push(blockKindFactory(entry.replacedBy.kind, where)({ index: i, ref: entry.replacedBy.ref, config, weights }));
    });
  } catch (err) {
    for (const b of blocks) b.dispose();
    model.dispose();
    throw err;
  }
  model.blocks = blocks;
  // The config stays the source's (its `raw` and the HF names refer to the original indices); the
  // block list, not nLayer, says what runs.
  Object.assign(model.config, { nLayer: config.nLayer });
  return model;
}
