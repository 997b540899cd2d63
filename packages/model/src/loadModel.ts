import { Checkpoint } from '@scaleot/checkpoint';
import { createModel, type CreateModelOptions } from './createModel.js';
import type { CausalLM } from './types.js';

export type LoadModelOptions = CreateModelOptions;

/**
 * Opens an HF checkpoint dir (single file or sharded), validates it against its config and reads the
 * tensors one at a time (F16/BF16 upcast to float32), so peak memory stays near the float32 size.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
  const ckpt = await Checkpoint.open(dir);
  try {
    const names = ckpt.validate();
    const weights = new Map<string, Float32Array>();
    for (const [canonical, stored] of names) {
      if (canonical === 'lm_head.weight') continue;
      weights.set(canonical, await ckpt.readFloat32(stored));
    }
    return createModel(ckpt.config, weights, { ...opts, consumeWeights: true });
  } finally {
    await ckpt.close();
  }
}
