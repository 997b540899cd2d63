import * as tf from '@tensorflow/tfjs';
import { LayerNorm } from '../../LayerNorm.js';
import { Linear } from '../../Linear.js';
import { LmHead } from '../../LmHead.js';
import { ModelError } from '../../ModelError.js';
import type { ParamFactory } from '../../ParamFactory.js';
import type { ForwardOptions, ModelStem } from '../../types.js';
import type { OptConfig } from './config.js';

/** HF OPTLearnedPositionalEmbedding: position p is row p + 2 of the table. */
export const OPT_POSITION_OFFSET = 2;

/**
 * OPT's token embedding (width word_embed_proj_dim, then project_in), learned positions with HF's
 * offset of 2, the decoder's final LayerNorm (pre-LN models), project_out and the (tied) head.
 */
export class OptStem implements ModelStem {
  readonly embedTokens: tf.Variable;
  readonly embedPositions: tf.Variable;
  readonly projectIn: Linear | null;
  readonly projectOut: Linear | null;
  readonly finalLayerNorm: LayerNorm | null;
  readonly lmHead: LmHead;

  constructor(
    private readonly config: OptConfig,
    params: ParamFactory,
  ) {
    const d = config.hiddenSize;
    const w = config.wordEmbedProjDim;
    // HF module order: embed_tokens, embed_positions, project_out, project_in, final_layer_norm.
    this.embedTokens = params.variable('model.decoder.embed_tokens.weight', [config.vocabSize, w], { kind: 'normal', std: 0.02 });
    this.embedPositions = params.variable('model.decoder.embed_positions.weight', [config.maxPositions + OPT_POSITION_OFFSET, d], { kind: 'normal', std: 0.02 });
    this.projectOut = config.projectEmbeddings ? new Linear('model.decoder.project_out', d, w, 'out_in', params, { bias: false }) : null;
    this.projectIn = config.projectEmbeddings ? new Linear('model.decoder.project_in', w, d, 'out_in', params, { bias: false }) : null;
    this.finalLayerNorm = config.finalLayerNorm ? new LayerNorm('model.decoder.final_layer_norm', d, config.normEps, params) : null;
    this.lmHead = new LmHead(this.embedTokens, config.tieWordEmbeddings, params, [config.vocabSize, w]);
  }

  /**
   * Token embedding (+ project_in) plus the position rows. Positions: `positionIds` when given, else
   * HF's rule from the attention mask, cumsum(mask)·mask − 1 (padding gets −1, row 1 of the table),
   * else 0…t−1.
   */
  embed(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const [b, t] = ids.shape;
    const max = this.config.maxPositions;
    if (t > max) {
      throw new ModelError('SEQUENCE_TOO_LONG', `sequence of ${t} tokens exceeds max_position_embeddings ${max}; cut it into windows`, { where: 'ids' });
    }
    if (opts.positionIds) {
      const positions = opts.positionIds.dataSync();
      const bad = positions.findIndex((p) => !(p >= -OPT_POSITION_OFFSET && p < max));
      if (bad >= 0) {
        throw new ModelError('BAD_ARGUMENT', `positionIds holds ${positions[bad]}; OPT positions must lie in [−2, ${max}) (its learned table has max_position_embeddings + 2 rows)`, { where: 'positionIds' });
      }
    }
    return tf.tidy(() => {
      const d = this.config.hiddenSize;
      const flatIds = tf.reshape(ids, [b * t]);
      let tok = tf.gather(this.embedTokens, flatIds) as tf.Tensor2D;
      if (this.projectIn) tok = this.projectIn.apply(tok);
      const tok3 = tf.reshape(tok, [b, t, d]);
      let rows: tf.Tensor | undefined;
      if (opts.positionIds) {
        rows = tf.add(tf.cast(opts.positionIds, 'int32'), tf.scalar(OPT_POSITION_OFFSET, 'int32'));
      } else if (opts.attentionMask) {
        const mask = tf.cast(opts.attentionMask, 'int32');
        // cumsum(mask)·mask − 1 + 2
        rows = tf.add(tf.mul(tf.cumsum(mask, 1), mask), tf.scalar(OPT_POSITION_OFFSET - 1, 'int32'));
      }
      const pos = rows ? tf.reshape(tf.gather(this.embedPositions, tf.reshape(rows, [b * t])), [b, t, d]) : tf.slice(this.embedPositions, [OPT_POSITION_OFFSET, 0], [t, d]);
      return tf.add(tok3, pos) as tf.Tensor3D;
    });
  }

  finalNorm(h: tf.Tensor2D): tf.Tensor2D {
    return this.finalLayerNorm ? this.finalLayerNorm.apply(h) : h;
  }

  head(h: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t, d] = h.shape;
      let y = this.finalNorm(tf.reshape(h, [b * t, d]) as tf.Tensor2D);
      if (this.projectOut) y = this.projectOut.apply(y);
      return tf.reshape(this.lmHead.apply(y), [b, t, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  embeddingVariables(): Map<string, tf.Variable> {
    return new Map([
      ['model.decoder.embed_tokens.weight', this.embedTokens],
      ['model.decoder.embed_positions.weight', this.embedPositions],
      ...(this.projectIn?.namedVariables() ?? []),
    ]);
  }

  headVariables(): Map<string, tf.Variable> {
    return new Map([...(this.finalLayerNorm?.namedVariables() ?? []), ...(this.projectOut?.namedVariables() ?? []), ...this.lmHead.namedVariables()]);
  }

  dispose(): void {
    this.embedTokens.dispose();
    this.embedPositions.dispose();
    this.projectIn?.dispose();
    this.projectOut?.dispose();
    this.finalLayerNorm?.dispose();
    this.lmHead.dispose();
  }
}
