import * as tf from '@tensorflow/tfjs';
import { Gpt2Block } from './Gpt2Block.js';
import { LayerNorm } from './LayerNorm.js';
import { ModelError } from './ModelError.js';
import type { GPT2Config } from './modelConfig.js';
import { crossEntropyPerToken } from '@scaleot/backend';
import { ParamFactory, type WeightMap } from './ParamFactory.js';
import { saveModel } from './saveModel.js';
import type { BlockModule, CausalLM, HiddenOptions, SaveOptions } from './types.js';

export interface Gpt2ModelOptions {
  /** Seed of the random init when no weights are given (default 0). */
  seed?: number;
  /** Create the variables trainable (default true; tf.variableGrads needs the variables listed anyway). */
  trainable?: boolean;
  /** Delete each entry of `weights` once it is copied into a variable (default false; loaders use it). */
  consumeWeights?: boolean;
}

/** GPT-2 with a tied LM head. Arch-specific; reached through `createModel`. */
export class Gpt2LMHeadModel implements CausalLM {
  readonly embeddings: { readonly wte: tf.Variable; readonly wpe: tf.Variable };
  blocks: BlockModule[];
  readonly lnF: LayerNorm;
  private disposed = false;

  constructor(
    readonly config: GPT2Config,
    weights?: WeightMap,
    opts: Gpt2ModelOptions = {},
  ) {
    if (config.nEmbd % config.nHead !== 0) {
      throw new ModelError('BAD_CONFIG', `n_embd ${config.nEmbd} is not a multiple of n_head ${config.nHead}`, { where: 'config.json' });
    }
    const params = new ParamFactory(weights, opts.seed ?? 0, opts.trainable ?? true, opts.consumeWeights ?? false);
    this.embeddings = {
      wte: params.variable('transformer.wte.weight', [config.vocabSize, config.nEmbd], { kind: 'normal', std: 0.02 }),
      wpe: params.variable('transformer.wpe.weight', [config.nPositions, config.nEmbd], { kind: 'normal', std: 0.02 }),
    };
    this.blocks = [];
    for (let i = 0; i < config.nLayer; i++) this.blocks.push(new Gpt2Block(i, config, params));
    this.lnF = new LayerNorm('transformer.ln_f', config.nEmbd, config.layerNormEpsilon, params);
    if (weights) {
      const unused = [...weights.keys()].filter((k) => !params.created.has(k) && !params.created.has(`transformer.${k}`) && !/^lm_head\./.test(k));
      if (unused.length > 0) {
        throw new ModelError('UNEXPECTED_TENSOR', `weights not used by a ${config.nLayer}-layer GPT-2: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ' …' : ''}`, { where: unused[0] });
      }
    }
  }

  embed(ids: tf.Tensor2D): tf.Tensor3D {
    this.assertLive();
    const [b, t] = ids.shape;
    if (t > this.config.nPositions) {
      throw new ModelError('SEQUENCE_TOO_LONG', `sequence of ${t} tokens exceeds n_positions ${this.config.nPositions}; cut it into windows`, { where: 'ids' });
    }
    return tf.tidy(() => {
      const d = this.config.nEmbd;
      const tok = tf.gather(this.embeddings.wte, tf.reshape(ids, [b * t]));
      const pos = tf.slice(this.embeddings.wpe, [0, 0], [t, d]);
      return tf.reshape(tf.add(tf.reshape(tok, [b, t, d]), pos), [b, t, d]) as tf.Tensor3D;
    });
  }

  runBlocks(x: tf.Tensor3D, from = 0, to = this.blocks.length): tf.Tensor3D {
    this.assertLive();
    return tf.tidy(() => {
      let h = x;
      for (let i = from; i < to; i++) h = this.blocks[i].apply(h);
      return h === x ? tf.clone(x) : h;
    });
  }

  head(h: tf.Tensor3D): tf.Tensor3D {
    this.assertLive();
    return tf.tidy(() => {
      const [b, t, d] = h.shape;
      const normed = this.lnF.apply(tf.reshape(h, [b * t, d]) as tf.Tensor2D);
      const logits = tf.matMul(normed, this.embeddings.wte as tf.Tensor2D, false, true);
      return tf.reshape(logits, [b, t, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  hidden(ids: tf.Tensor2D, opts: HiddenOptions = {}): tf.Tensor3D {
    const upTo = opts.upToBlock ?? this.blocks.length;
    if (upTo < 0 || upTo > this.blocks.length) {
      throw new ModelError('BAD_ARGUMENT', `upToBlock ${upTo} is outside [0, ${this.blocks.length}]`, { where: 'hidden' });
    }
    if (opts.finalNorm && upTo !== this.blocks.length) {
      throw new ModelError('BAD_ARGUMENT', 'finalNorm applies only after the whole block list', { where: 'hidden' });
    }
    return tf.tidy(() => {
      const h = this.runBlocks(this.embed(ids), 0, upTo);
      if (!opts.finalNorm) return h;
      const [b, t, d] = h.shape;
      return tf.reshape(this.lnF.apply(tf.reshape(h, [b * t, d]) as tf.Tensor2D), [b, t, d]) as tf.Tensor3D;
    });
  }

  logits(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => this.head(this.runBlocks(this.embed(ids))));
  }

  tokenNll(ids: tf.Tensor2D): tf.Tensor2D {
    const [b, t] = ids.shape;
    if (t < 2) throw new ModelError('BAD_ARGUMENT', `need at least 2 tokens per row to predict one, got ${t}`, { where: 'ids' });
    return tf.tidy(() => {
      const h = this.runBlocks(this.embed(ids));
      // The last position predicts nothing: skip its head row (saves 1/t of the largest matmul).
      const logits = this.head(tf.slice(h, [0, 0, 0], [b, t - 1, this.config.nEmbd]));
      const targets = tf.slice(ids, [0, 1], [b, t - 1]);
      return crossEntropyPerToken(logits, targets) as tf.Tensor2D;
    });
  }

  lossSum(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const nll = this.tokenNll(ids);
      return lossMask ? tf.sum(tf.mul(nll, lossMask)) : tf.sum(nll);
    });
  }

  loss(ids: tf.Tensor2D, lossMask?: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const nll = this.tokenNll(ids);
      if (!lossMask) return tf.mean(nll);
      return tf.div(tf.sum(tf.mul(nll, lossMask)), tf.maximum(tf.sum(lossMask), 1));
    });
  }

  parameterGroups(): Map<string, tf.Variable[]> {
    const groups = new Map<string, tf.Variable[]>();
    groups.set('embeddings', [this.embeddings.wte, this.embeddings.wpe]);
    for (const block of this.blocks) {
      const key = `block.${block.sourceIndex}`;
      groups.set(key, [...(groups.get(key) ?? []), ...block.namedVariables().values()]);
    }
    groups.set('ln_f', [this.lnF.gamma, this.lnF.beta]);
    return groups;
  }

  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>([
      ['transformer.wte.weight', this.embeddings.wte],
      ['transformer.wpe.weight', this.embeddings.wpe],
    ]);
    for (const block of this.blocks) {
      for (const [name, v] of block.namedVariables()) {
        if (out.has(name)) throw new ModelError('DUPLICATE_NAME', `two block-list entries both own "${name}"`, { where: name });
        out.set(name, v);
      }
    }
    for (const [name, v] of this.lnF.namedVariables()) out.set(name, v);
    return out;
  }

  save(dir: string, opts: SaveOptions = {}): Promise<void> {
    this.assertLive();
    return saveModel(this, dir, opts);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.embeddings.wte.dispose();
    this.embeddings.wpe.dispose();
    for (const block of this.blocks) block.dispose();
    this.lnF.dispose();
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelError('DISPOSED', 'the model was disposed', { where: 'model' });
  }
}
