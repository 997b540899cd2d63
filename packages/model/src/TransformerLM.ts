import * as tf from '@tensorflow/tfjs';
import { crossEntropyPerToken } from '@scaleot/backend';
import type { ModelConfig, ModelFamily } from './families/types.js';
import { ModelError } from './ModelError.js';
import { paddedCausalBias } from './ops.js';
import { ParamFactory, type WeightMap } from './ParamFactory.js';
import { saveModel } from './saveModel.js';
import type { BlockContext, BlockModule, CausalLM, ForwardOptions, HiddenOptions, ModelStem, SaveOptions } from './types.js';

export interface CreateModelOptions {
  /** Seed of the random init when no weights are given (default 0). */
  seed?: number;
  /** Create the variables trainable (default true; tf.variableGrads needs the variables listed anyway). */
  trainable?: boolean;
  /** Delete each entry of `weights` once it is copied into a variable (default false; loaders use it). */
  consumeWeights?: boolean;
}

/**
 * A decoder-only causal LM of any family: the family's stem (embeddings, final norm, head) around an
 * ordered, mutable list of blocks. Nothing here knows a family's tensor names or block classes.
 */
export class TransformerLM implements CausalLM {
  readonly stem: ModelStem;
  blocks: BlockModule[];
  private disposed = false;

  constructor(
    readonly family: ModelFamily,
    readonly config: ModelConfig,
    weights?: WeightMap,
    opts: CreateModelOptions = {},
  ) {
    const params = new ParamFactory(weights, opts.seed ?? 0, opts.trainable ?? true, opts.consumeWeights ?? false);
    this.stem = family.createStem(config, params);
    this.blocks = [];
    try {
      for (let i = 0; i < config.nLayer; i++) this.blocks.push(family.createBlock(i, config, params));
    } catch (err) {
      this.dispose();
      throw err;
    }
    if (weights) {
      const tiedHeads = new Set(config.tieWordEmbeddings ? family.naming.tiedKeys.map(([head]) => head) : []);
      const unused = [...weights.keys()].filter((k) => !params.created.has(k) && !tiedHeads.has(k));
      if (unused.length > 0) {
        this.dispose();
        throw new ModelError('UNEXPECTED_TENSOR', `weights not used by a ${config.nLayer}-block ${family.name}: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ' …' : ''}`, { where: unused[0] });
      }
    }
  }

  embed(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D {
    this.assertLive();
    return this.stem.embed(ids, opts);
  }

  blockContext(ids: tf.Tensor2D, opts: ForwardOptions = {}): BlockContext | undefined {
    if (!opts.attentionMask && !opts.positionIds) return undefined;
    const [b, t] = ids.shape;
    for (const [name, tensor] of [['attentionMask', opts.attentionMask], ['positionIds', opts.positionIds]] as const) {
      if (tensor && (tensor.shape[0] !== b || tensor.shape[1] !== t)) {
        throw new ModelError('BAD_ARGUMENT', `${name} is [${tensor.shape}], the ids are [${b}, ${t}]`, { where: name });
      }
    }
    return {
      attentionBias: opts.attentionMask ? paddedCausalBias(opts.attentionMask) : undefined,
      positionIds: opts.positionIds,
    };
  }

  runBlocks(x: tf.Tensor3D, from = 0, to = this.blocks.length, ctx?: BlockContext): tf.Tensor3D {
    this.assertLive();
    return tf.tidy(() => {
      let h = x;
      for (let i = from; i < to; i++) h = this.blocks[i].apply(h, ctx);
      return h === x ? tf.clone(x) : h;
    });
  }

  head(h: tf.Tensor3D): tf.Tensor3D {
    this.assertLive();
    return this.stem.head(h);
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
      const h = this.runBlocks(this.embed(ids, opts), 0, upTo, this.blockContext(ids, opts));
      if (!opts.finalNorm) return h;
      const [b, t, d] = h.shape;
      return tf.reshape(this.stem.finalNorm(tf.reshape(h, [b * t, d]) as tf.Tensor2D), [b, t, d]) as tf.Tensor3D;
    });
  }

  logits(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D {
    return tf.tidy(() => this.head(this.runBlocks(this.embed(ids, opts), 0, this.blocks.length, this.blockContext(ids, opts))));
  }

  tokenNll(ids: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor2D {
    const [b, t] = ids.shape;
    if (t < 2) throw new ModelError('BAD_ARGUMENT', `need at least 2 tokens per row to predict one, got ${t}`, { where: 'ids' });
    return tf.tidy(() => {
      const h = this.runBlocks(this.embed(ids, opts), 0, this.blocks.length, this.blockContext(ids, opts));
      // The last position predicts nothing: skip its head row (saves 1/t of the largest matmul).
      const logits = this.head(tf.slice(h, [0, 0, 0], [b, t - 1, this.config.hiddenSize]));
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
    groups.set('embeddings', [...this.stem.embeddingVariables().values()]);
    for (const block of this.blocks) {
      const key = `block.${block.sourceIndex}`;
      groups.set(key, [...(groups.get(key) ?? []), ...block.namedVariables().values()]);
    }
    groups.set('head', [...this.stem.headVariables().values()]);
    return groups;
  }

  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>(this.stem.embeddingVariables());
    for (const block of this.blocks) {
      for (const [name, v] of block.namedVariables()) {
        if (out.has(name)) throw new ModelError('DUPLICATE_NAME', `two block-list entries both own "${name}"`, { where: name });
        out.set(name, v);
      }
    }
    for (const [name, v] of this.stem.headVariables()) out.set(name, v);
    return out;
  }

  save(dir: string, opts: SaveOptions = {}): Promise<void> {
    this.assertLive();
    return saveModel(this, dir, opts);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stem?.dispose();
    for (const block of this.blocks ?? []) block.dispose();
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelError('DISPOSED', 'the model was disposed', { where: 'model' });
  }
}
