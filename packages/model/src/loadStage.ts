import * as tf from '@tensorflow/tfjs';
import { openModelCheckpoint } from './loadModel.js';
import type { WeightMap } from './ParamFactory.js';
import { PipelineStage, stageParameters, type StageRange } from './PipelineStage.js';

export interface LoadStageOptions {
  /** Create the variables trainable (default true). */
  trainable?: boolean;
}

export interface LoadedStage {
  stage: PipelineStage;
  /** Tensor-data bytes read from the checkpoint (headers excluded): only this stage's tensors. */
  bytesRead: number;
}

/**
 * Loads one pipeline stage (blocks `range`, plus the embeddings on the first stage and the final norm
 * and head on the last) from an HF checkpoint dir, sharded or not, reading only those tensors: headers
 * are read and validated whole, tensor data only for what the stage holds. A tied head is the
 * embedding (a stored copy is never read, nor compared: that is `loadModel`'s check).
 */
export async function loadStage(dir: string, range: StageRange, opts: LoadStageOptions = {}): Promise<LoadedStage> {
  const { checkpoint, family, config, names } = await openModelCheckpoint(dir, { checkTiedWeights: false });
  try {
    const held = stageParameters(family, config, range);
    const weights: WeightMap = new Map();
    const copies = tf.getBackend() === 'wasm';
    let scratch: Float32Array | undefined;
    if (copies) {
      let largest = 0;
      for (const [canonical, stored] of names) if (held.names.has(canonical)) largest = Math.max(largest, checkpoint.info(stored).shape.reduce((a, b) => a * b, 1));
      scratch = new Float32Array(largest);
    }
    try {
      for (const [canonical, stored] of names) {
        if (!held.names.has(canonical)) continue;
        const shape = checkpoint.info(stored).shape;
        const values = scratch ? await checkpoint.readFloat32Into(stored, scratch) : await checkpoint.readFloat32(stored);
        weights.set(canonical, tf.tensor(values, shape, 'float32'));
      }
      const stage = new PipelineStage(family, config, range, weights, { trainable: opts.trainable, consumeWeights: true });
      return { stage, bytesRead: checkpoint.bytesRead };
    } catch (err) {
      tf.dispose([...weights.values()].filter((w): w is tf.Tensor => w instanceof tf.Tensor && !w.isDisposed));
      throw err;
    }
  } finally {
    await checkpoint.close();
  }
}
