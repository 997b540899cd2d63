import * as tf from '@tensorflow/tfjs';
import { LayerNorm } from '../../LayerNorm.js';
import { LmHead } from '../../LmHead.js';
import { ModelError } from '../../ModelError.js';
import type { ParamFactory } from '../../ParamFactory.js';
import type { ForwardOptions, ModelStem } from '../../types.js';
import type { Gpt2Config } from './config.js';

/** GPT-2's token + learned position embeddings, final LayerNorm `ln_f` and (tied) head. */
export class Gpt2Stem implements ModelStem {
  readonly wte: tf.Variable;
  readonly wpe: tf.Variable;
  readonly lnF: LayerNorm;
  readonly lmHead: LmHead;

  constructor(
    private readonly config: Gpt2Config,
    params: ParamFactory,
  ) {
    const d = config.hiddenSize;
    this.wte = params.variable('transformer.wte.weight', [config.vocabSize, d], { kind: 'normal', std: 0.02 });
    this.wpe = params.variable('transformer.wpe.weight', [config.maxPositions, d], { kind: 'normal', std: 0.02 });
    this.lnF = new LayerNorm('transformer.ln_f', d, config.normEps, params);
    this.lmHead = new LmHead(this.wte, config.tieWordEmbeddings, params, [config.vocabSize, d]);
  }

  embed(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const [b, t] = ids.shape;
    if (t > this.config.maxPositions) {
      throw new ModelError('SEQUENCE_TOO_LONG', `sequence of ${t} tokens exceeds n_positions ${this.config.maxPositions}; cut it into windows`, { where: 'ids' });
    }
    return tf.tidy(() => {
      const d = this.config.hiddenSize;
      const tok = tf.reshape(tf.gather(this.wte, tf.reshape(ids, [b * t])), [b, t, d]);
      const pos = opts.positionIds ? tf.reshape(tf.gather(this.wpe, tf.reshape(opts.positionIds, [b * t])), [b, t, d]) : tf.slice(this.wpe, [0, 0], [t, d]);
      return tf.add(tok, pos) as tf.Tensor3D;
    });
  }

  finalNorm(h: tf.Tensor2D): tf.Tensor2D {
    return this.lnF.apply(h);
  }

  head(h: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t, d] = h.shape;
      return tf.reshape(this.lmHead.apply(this.lnF.apply(tf.reshape(h, [b * t, d]) as tf.Tensor2D)), [b, t, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  embeddingVariables(): Map<string, tf.Variable> {
    return new Map([
      ['transformer.wte.weight', this.wte],
      ['transformer.wpe.weight', this.wpe],
    ]);
  }

  headVariables(): Map<string, tf.Variable> {
    return new Map([...this.lnF.namedVariables(), ...this.lmHead.namedVariables()]);
  }

  dispose(): void {
    this.wte.dispose();
    this.wpe.dispose();
    this.lnF.dispose();
    this.lmHead.dispose();
  }
}
