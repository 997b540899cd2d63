import * as tf from '@tensorflow/tfjs';
import { crossEntropyPerToken } from '@scaleot/backend';
import type { ModelConfig, ModelFamily } from './families/types.js';
import { ModelError } from './ModelError.js';
import { ParamFactory, type WeightMap } from './ParamFactory.js';
import type { BlockContext, BlockModule, ModelStem } from './types.js';

/** Builds the module at original block `index` (null: the block is dropped, as in an emulator). */
export type StageBlockBuilder = (index: number, params: ParamFactory) => BlockModule | null;

/** Blocks [from, to) of a model: one pipeline stage's contiguous share. */
export interface StageRange {
  from: number;
  to: number;
}

/** Canonical names a stage holds, in module order, with what part of the model they are. */
export interface StageParameters {
  /** Every canonical parameter name the stage needs (its blocks, the embeddings on the first stage, final norm and head on the last; a tied head's embedding on the last). */
  names: Set<string>;
  first: boolean;
  last: boolean;
}

/** Throws BAD_ARGUMENT unless `range` is a non-empty contiguous block range of the model. */
export function checkStageRange(config: ModelConfig, range: StageRange): void {
  if (!(Number.isInteger(range.from) && Number.isInteger(range.to) && range.from >= 0 && range.to <= config.nLayer && range.from < range.to)) {
    throw new ModelError('BAD_ARGUMENT', `stage range [${range.from}, ${range.to}) is not a non-empty block range of a ${config.nLayer}-block model`, { where: 'StageRange' });
  }
}

/**
 * The stem's embedding-side and head-side parameter names, asked of the family itself (its stem built
 * with placeholders only), so nothing here matches tensor names.
 */
export function stemParameterNames(family: ModelFamily, config: ModelConfig): { embedding: string[]; head: string[]; tiedEmbedding: string[] } {
  const stem = family.createStem(config, new ParamFactory(undefined, 0, false, false, () => true));
  try {
    const embedding = [...stem.embeddingVariables().keys()];
    const head = [...stem.headVariables().keys()];
    const tiedEmbedding = config.tieWordEmbeddings ? family.naming.tiedKeys.map(([, e]) => e) : [];
    return { embedding, head, tiedEmbedding };
  } finally {
    stem.dispose();
  }
}

/** The parameters a stage holding `range` needs (see {@link StageParameters}). */
export function stageParameters(family: ModelFamily, config: ModelConfig, range: StageRange): StageParameters {
  checkStageRange(config, range);
  const first = range.from === 0;
  const last = range.to === config.nLayer;
  const stem = stemParameterNames(family, config);
  const names = new Set<string>();
  for (const spec of family.expectedParameters(config)) {
    const block = family.naming.blockIndex(spec.name);
    if (block !== undefined && block >= range.from && block < range.to) names.add(spec.name);
  }
  if (first) for (const n of stem.embedding) names.add(n);
  if (last) for (const n of [...stem.head, ...stem.tiedEmbedding]) names.add(n);
  return { names, first, last };
}

/**
 * One pipeline stage of a causal LM: blocks [from, to) and, on the first stage, the embeddings, on the
 * last, the final norm and head (with the embedding when the head is tied to it). The other stages'
 * stem tensors are empty placeholders, so memory holds only this stage's share. Composing the stages
 * in order computes exactly what the whole model computes (the same kernels on the same values). An
 * emulator's stage builds its blocks its own way (`buildBlock`: dropped blocks, harmonizers, SRC).
 */
export class PipelineStage {
  readonly stem: ModelStem;
  readonly blocks: BlockModule[] = [];
  readonly first: boolean;
  readonly last: boolean;
  private disposed = false;

  constructor(
    readonly family: ModelFamily,
    readonly config: ModelConfig,
    readonly range: StageRange,
    weights: WeightMap,
    opts: { trainable?: boolean; consumeWeights?: boolean; buildBlock?: StageBlockBuilder } = {},
  ) {
    const held = stageParameters(family, config, range);
    this.first = held.first;
    this.last = held.last;
    const params = new ParamFactory(weights, 0, opts.trainable ?? true, opts.consumeWeights ?? false, (name) => !held.names.has(name));
    this.stem = family.createStem(config, params);
    try {
      const build = opts.buildBlock ?? ((i: number, p: ParamFactory) => family.createBlock(i, config, p));
      for (let i = range.from; i < range.to; i++) {
        const block = build(i, params);
        if (block) this.blocks.push(block);
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
    const unused = [...weights.keys()].filter((k) => !params.created.has(k) || !held.names.has(k));
    if (unused.length > 0) {
      this.dispose();
      throw new ModelError('UNEXPECTED_TENSOR', `weights not used by stage [${range.from}, ${range.to}): ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ' …' : ''}`, { where: unused[0] });
    }
  }

  /**
   * The stage's forward: the first stage takes ids int32 [b, t] (embedded here), the others the previous
   * stage's hidden state [b, t, d]; returns the hidden state after this stage's blocks (or after
   * `modules`, one per block, e.g. with harmonizers standing in for some). Inference only:
   * intermediates are freed block by block (use the blocks directly under a gradient tape).
   */
  forward(input: tf.Tensor, ctx?: BlockContext, modules: readonly BlockModule[] = this.blocks): tf.Tensor3D {
    this.assertLive();
    let h: tf.Tensor3D;
    if (this.first) {
      if (input.rank !== 2 || input.dtype !== 'int32') throw new ModelError('BAD_ARGUMENT', `the first stage takes ids int32 [b, t], got ${input.dtype} [${input.shape}]`, { where: 'PipelineStage.forward' });
      h = this.stem.embed(input as tf.Tensor2D);
    } else {
      if (input.rank !== 3 || input.shape[2] !== this.config.hiddenSize) throw new ModelError('BAD_ARGUMENT', `stage [${this.range.from}, ${this.range.to}) takes a hidden state [b, t, ${this.config.hiddenSize}], got [${input.shape}]`, { where: 'PipelineStage.forward' });
      h = input as tf.Tensor3D;
    }
    // One block's intermediates at a time (attention scores, MLP activations): a stage's peak memory is
    // its weights plus one block's working set, not every block's (the wasm heap never shrinks).
    if (modules.length !== this.blocks.length) throw new ModelError('BAD_ARGUMENT', `stage [${this.range.from}, ${this.range.to}) runs ${this.blocks.length} modules, got ${modules.length}`, { where: 'PipelineStage.forward' });
    for (const block of modules) {
      const next = tf.tidy(() => block.apply(h, ctx));
      if (h !== input) h.dispose();
      h = next;
    }
    return h === input ? tf.clone(h) : h;
  }

  /** Final norm + head on the last stage: [b, t, d] → logits [b, t, V]. */
  head(h: tf.Tensor3D): tf.Tensor3D {
    this.assertLast('head');
    return this.stem.head(h);
  }

  /** Last stage: per-token NLL of `targets` int32 [b, t] given the final hidden state [b, t, d]. */
  tokenNll(h: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor2D {
    this.assertLast('tokenNll');
    return tf.tidy(() => crossEntropyPerToken(this.stem.head(h), targets) as tf.Tensor2D);
  }

  /** The weights this stage holds, under their canonical names (placeholders excluded). */
  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    const add = (entries: Map<string, tf.Variable> | [string, tf.Variable][]) => {
      for (const [n, v] of entries) if (v.size > 0) out.set(n, v);
    };
    if (this.first) add(this.stem.embeddingVariables());
    for (const block of this.blocks) add(block.namedVariables());
    if (this.last) add(this.stem.headVariables());
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stem?.dispose();
    for (const block of this.blocks) block.dispose();
  }

  private assertLast(what: string): void {
    this.assertLive();
    if (!this.last) throw new ModelError('BAD_ARGUMENT', `${what} runs on the last stage only; this one holds blocks [${this.range.from}, ${this.range.to}) of ${this.config.nLayer}`, { where: 'PipelineStage' });
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelError('DISPOSED', 'the stage was disposed', { where: 'PipelineStage' });
  }
}
