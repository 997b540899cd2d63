import * as tf from '@tensorflow/tfjs';
import { LmHead } from '../../LmHead.js';
import type { ParamFactory } from '../../ParamFactory.js';
import { RmsNorm } from '../../RmsNorm.js';
import type { ForwardOptions, ModelStem } from '../../types.js';
import type { LlamaConfig } from './config.js';

/** LLaMA's token embedding (positions are rotary, inside the blocks), final RMSNorm `model.norm` and head. */
export class LlamaStem implements ModelStem {
  readonly embedTokens: tf.Variable;
  readonly norm: RmsNorm;
  readonly lmHead: LmHead;

  constructor(
    private readonly config: LlamaConfig,
    params: ParamFactory,
  ) {
    this.embedTokens = params.variable('model.embed_tokens.weight', [config.vocabSize, config.hiddenSize], { kind: 'normal', std: 0.02 });
    this.norm = new RmsNorm('model.norm', config.hiddenSize, config.normEps, params);
    this.lmHead = new LmHead(this.embedTokens, config.tieWordEmbeddings, params, [config.vocabSize, config.hiddenSize]);
  }

  embed(ids: tf.Tensor2D, _opts?: ForwardOptions): tf.Tensor3D {
    const [b, t] = ids.shape;
    return tf.tidy(() => tf.reshape(tf.gather(this.embedTokens, tf.reshape(ids, [b * t])), [b, t, this.config.hiddenSize]) as tf.Tensor3D);
  }

  finalNorm(h: tf.Tensor2D): tf.Tensor2D {
    return this.norm.apply(h);
  }

  head(h: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t, d] = h.shape;
      return tf.reshape(this.lmHead.apply(this.norm.apply(tf.reshape(h, [b * t, d]) as tf.Tensor2D)), [b, t, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  embeddingVariables(): Map<string, tf.Variable> {
    return new Map([['model.embed_tokens.weight', this.embedTokens]]);
  }

  headVariables(): Map<string, tf.Variable> {
    return new Map([...this.norm.namedVariables(), ...this.lmHead.namedVariables()]);
  }

  dispose(): void {
    this.embedTokens.dispose();
    this.norm.dispose();
    this.lmHead.dispose();
  }
}
