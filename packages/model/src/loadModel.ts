import * as tf from '@tensorflow/tfjs';
import { Checkpoint, CheckpointError } from '@scaleot/checkpoint';
import { createModel, type CreateModelOptions } from './createModel.js';
import { familyOf, parseModelConfig } from './families/index.js';
import type { AnyFamily, ModelConfig } from './families/types.js';
import type { WeightMap } from './ParamFactory.js';
import type { CausalLM } from './types.js';

export type LoadModelOptions = CreateModelOptions;

/** An opened HF model directory whose tensors were checked against its family's parameter list. */
export interface OpenedModel {
  checkpoint: Checkpoint;
  family: AnyFamily;
  config: ModelConfig;
  /** Canonical name → stored name, for every parameter (a tied head only when stored). */
  names: Map<string, string>;
}

/**
 * Opens a checkpoint and validates it against its family: every parameter present with the family's
 * shape, nothing extra, and a tied head, when stored, equal to the embedding (else TIED_WEIGHTS_DIFFER).
 * The caller closes `checkpoint`.
 */
export async function openModelCheckpoint(dir: string, opts: { checkTiedWeights?: boolean } = {}): Promise<OpenedModel> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const config = parseModelConfig(checkpoint.rawConfig, checkpoint.configFile);
    const family = familyOf(config);
    const { raw: _raw, ...summary } = config;
    const names = checkpoint.validate(family.expectedParameters(config), family.naming, JSON.stringify(summary));
    if (config.tieWordEmbeddings) {
      // A pipeline stage skips the comparison (checkTiedWeights false): it would read the whole
      // embedding and head on every stage, and a stage never reads a stored tied head anyway.
      for (const [head, embedding] of family.naming.tiedKeys) {
        if (!names.has(head)) continue;
        if (opts.checkTiedWeights === false) {
          names.delete(head);
          continue;
        }
        const [a, b] = [await checkpoint.readFloat32(names.get(head)!), await checkpoint.readFloat32(names.get(embedding)!)];
        if (a.length !== b.length || a.some((v, i) => v !== b[i] && !(Number.isNaN(v) && Number.isNaN(b[i])))) {
          throw new CheckpointError(
            'TIED_WEIGHTS_DIFFER',
            checkpoint.fileOf(head).path,
            `stores "${names.get(head)}", which differs from the embedding "${names.get(embedding)}" although config.json says tie_word_embeddings (the default for ${family.name}); set "tie_word_embeddings": false if the head is its own weight, or drop the stored head.`,
            { tensor: names.get(head) },
          );
        }
        names.delete(head);
      }
    }
    return { checkpoint, family, config, names };
  } catch (err) {
    await checkpoint.close();
    throw err;
  }
}

/**
 * Opens an HF checkpoint dir (single file or sharded), validates it against its family and reads the
 * tensors one at a time (F16/BF16 upcast to float32), uploading each to the backend as soon as it is
 * read: host memory holds one tensor at a time, so peak memory stays near the float32 size.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
  const { checkpoint, config, names } = await openModelCheckpoint(dir);
  try {
    const weights: WeightMap = new Map();
    // The wasm backend copies a tensor's values into its heap at once, so every tensor goes through one
    // reused host buffer: host memory stays at the largest tensor instead of garbage the GC frees when
    // it likes. cpu and tensorflow keep (or read later) the array they are given: a fresh one each.
    const copies = tf.getBackend() === 'wasm';
    let scratch: Float32Array | undefined;
    if (copies) {
      let largest = 0;
      for (const stored of names.values()) largest = Math.max(largest, checkpoint.info(stored).shape.reduce((a, b) => a * b, 1));
      scratch = new Float32Array(largest);
    }
    try {
      for (const [canonical, stored] of names) {
        const shape = checkpoint.info(stored).shape;
        const values = scratch ? await checkpoint.readFloat32Into(stored, scratch) : await checkpoint.readFloat32(stored);
        weights.set(canonical, tf.tensor(values, shape, 'float32'));
      }
      return createModel(config, weights, { ...opts, consumeWeights: true });
    } catch (err) {
      tf.dispose([...weights.values()].filter((w): w is tf.Tensor => w instanceof tf.Tensor && !w.isDisposed));
      throw err;
    }
  } finally {
    await checkpoint.close();
  }
}
