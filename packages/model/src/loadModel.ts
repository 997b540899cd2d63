import * as tf from '@tensorflow/tfjs';
import { Checkpoint } from '@scaleot/checkpoint';
import { createModel, type CreateModelOptions } from './createModel.js';
import type { WeightMap } from './ParamFactory.js';
import type { CausalLM } from './types.js';

export type LoadModelOptions = CreateModelOptions;

/**
 * Opens an HF checkpoint dir (single file or sharded), validates it against its config and reads the
 * tensors one at a time (F16/BF16 upcast to float32), uploading each to the backend as soon as it is
 * read: host memory holds one tensor at a time, so peak memory stays near the float32 size.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
  const ckpt = await Checkpoint.open(dir);
  try {
    const names = ckpt.validate();
    const weights: WeightMap = new Map();
    for (const [canonical, stored] of names) {
      if (canonical === 'lm_head.weight') continue;
      const info = ckpt.info(stored);
      weights.set(canonical, tf.tensor(await ckpt.readFloat32(stored), info.shape, 'float32'));
    }
    try {
      return createModel(ckpt.config, weights, { ...opts, consumeWeights: true });
    } catch (err) {
      tf.dispose([...weights.values()].filter((w): w is tf.Tensor => w instanceof tf.Tensor));
      throw err;
    }
  } finally {
    await ckpt.close();
  }
}
