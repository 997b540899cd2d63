import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '@scaleot/checkpoint';
import { familyOf, openModelCheckpoint, readModelConfig, type ModelConfig, type ModelFamily } from '@scaleot/model';
import { EMULATOR_MANIFEST, EMULATOR_WEIGHTS, readManifest, type EmulatorManifest } from './manifest.js';
import { OffsiteError } from './OffsiteError.js';

/** What a training run tunes: every weight (full fine-tuning of a model), an emulator's adapter blocks, or these blocks whole. */
export type TrainableSelection = 'all' | 'adapters' | { blocks: number[] };

export interface TrainableWeights {
  /** Float32 values and shapes by canonical name, read from the artifact. */
  weights: Map<string, { data: Float32Array; shape: number[] }>;
  config: ModelConfig;
  family: ModelFamily;
  /** Set when `dir` is an emulator artifact. */
  emulator?: EmulatorManifest;
}

/**
 * Reads only the tensors a run trains from a Hugging Face checkpoint or an emulator artifact (what a
 * pipeline-parallel run's loop process holds while the stages hold the rest).
 */
export async function readTrainableWeights(dir: string, selection: TrainableSelection): Promise<TrainableWeights> {
  const root = resolve(dir);
  const emulator = existsSync(join(root, EMULATOR_MANIFEST)) ? await readManifest(root, 'scaleot.emulator') : undefined;
  const config = await readModelConfig(root);
  const family = familyOf(config);
  let blocks: Set<number> | undefined;
  if (selection === 'adapters') {
    if (!emulator) throw new OffsiteError('BAD_OPTION', 'trainable "adapters" means an emulator\'s adapter blocks, and this is not an emulator artifact; give the blocks to train instead', { where: root });
    blocks = new Set([...emulator.adapter.bottom, ...emulator.adapter.top]);
  } else if (selection !== 'all') {
    for (const b of selection.blocks) {
      if (!Number.isInteger(b) || b < 0 || b >= config.nLayer) throw new OffsiteError('BAD_OPTION', `trainable block ${b} is not a block of this ${config.nLayer}-block model`, { where: root });
      if (emulator && emulator.layerMap[b] !== 'adapter' && emulator.layerMap[b] !== 'raw') throw new OffsiteError('BAD_OPTION', `block ${b} of the emulator is ${JSON.stringify(emulator.layerMap[b])}, not an original block to train`, { where: root });
    }
    blocks = new Set(selection.blocks);
  } else if (emulator) {
    throw new OffsiteError('BAD_OPTION', 'full fine-tuning trains a model, not an emulator; give the model directory', { where: root });
  }
  const wanted = (name: string) => {
    if (!blocks) return true;
    const block = family.naming.blockIndex(name);
    return block !== undefined && blocks.has(block);
  };
  const weights = new Map<string, { data: Float32Array; shape: number[] }>();
  if (emulator) {
    const file = await SafetensorsFile.open(join(root, EMULATOR_WEIGHTS));
    try {
      for (const name of file.names()) if (wanted(name)) weights.set(name, { data: await file.readFloat32(name), shape: file.info(name).shape.slice() });
    } finally {
      await file.close();
    }
  } else {
    const { checkpoint, names } = await openModelCheckpoint(root, { checkTiedWeights: false });
    try {
      for (const [canonical, stored] of names) if (wanted(canonical)) weights.set(canonical, { data: await checkpoint.readFloat32(stored), shape: checkpoint.info(stored).shape.slice() });
    } finally {
      await checkpoint.close();
    }
  }
  if (weights.size === 0) throw new OffsiteError('NOTHING_TO_TRAIN', `no weight of ${root} matches the trainable selection ${JSON.stringify(selection)}`, { where: root });
  return { weights, config, family, emulator };
}
