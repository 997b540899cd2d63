import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '@scaleot/checkpoint';
import { familyOf, loadStage, PipelineStage, readModelConfig, stageParameters, type LoadedStage, type StageRange, type WeightMap } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { blockKindFactory } from './blockKinds.js';
import { EMULATOR_MANIFEST, EMULATOR_WEIGHTS, readManifest } from './manifest.js';
import { OffsiteError } from './OffsiteError.js';

/**
 * One pipeline stage of an emulator: original blocks [from, to) as its layer map has them (adapter and
 * raw blocks from their weights, replaced ones by their registered module kind, dropped ones absent),
 * plus the embeddings on the first stage and the final norm and head on the last. Reads only the
 * stage's tensors of the emulator's weights file. Chained in order, the stages compute what
 * `loadEmulator`'s model computes.
 */
export async function loadEmulatorStage(dir: string, range: StageRange, opts: { trainable?: boolean } = {}): Promise<LoadedStage> {
  const root = resolve(dir);
  const manifest = await readManifest(root, 'scaleot.emulator');
  const config = await readModelConfig(root);
  const family = familyOf(config);
  const held = stageParameters(family, config, range).names;
  const file = await SafetensorsFile.open(join(root, EMULATOR_WEIGHTS));
  const weights: WeightMap = new Map();
  const modules = new Map<string, Float32Array>();
  let bytesRead = 0;
  try {
    const stored = file.names();
    for (const name of stored) {
      const block = family.naming.blockIndex(name);
      const entry = block === undefined ? undefined : manifest.layerMap[block];
      const keptBlock = entry === 'adapter' || entry === 'raw';
      if (held.has(name) && (block === undefined || keptBlock)) {
        const info = file.info(name);
        weights.set(name, tf.tensor(await file.readFloat32(name), info.shape, 'float32'));
        bytesRead += info.dataOffsets[1] - info.dataOffsets[0];
      }
    }
    for (let i = range.from; i < range.to; i++) {
      const entry = manifest.layerMap[i];
      if (typeof entry !== 'object') continue;
      const ref = entry.replacedBy.ref;
      for (const name of stored) {
        if (name !== ref && !name.startsWith(`${ref}.`)) continue;
        const info = file.info(name);
        modules.set(name, await file.readFloat32(name));
        bytesRead += info.dataOffsets[1] - info.dataOffsets[0];
      }
    }
  } catch (err) {
    tf.dispose([...weights.values()]);
    throw err;
  } finally {
    await file.close();
  }
  const where = `${root} stage [${range.from}, ${range.to})`;
  const stage = new PipelineStage(family, config, range, weights, {
    trainable: opts.trainable,
    consumeWeights: true,
    buildBlock: (i, params) => {
      const entry = manifest.layerMap[i];
      if (entry === 'dropped') return null;
      if (entry === 'adapter' || entry === 'raw') return family.createBlock(i, config, params);
      if (typeof entry !== 'object') throw new OffsiteError('MANIFEST_FIELD', `layerMap[${i}] is not an emulator entry`, { where });
      return blockKindFactory(entry.replacedBy.kind, where)({ index: i, ref: entry.replacedBy.ref, config, weights: modules });
    },
  });
  return { stage, bytesRead };
}

/** A pipeline stage of whatever `dir` holds: an emulator artifact, or a Hugging Face checkpoint. */
export function loadPipelineStage(dir: string, range: StageRange, opts: { trainable?: boolean } = {}): Promise<LoadedStage> {
  return existsSync(join(dir, EMULATOR_MANIFEST)) ? loadEmulatorStage(dir, range, opts) : loadStage(dir, range, opts);
}
