import { expectedParameters } from './families/index.js';
import type { ModelConfig } from './families/types.js';
import { familyOf } from './families/index.js';
import { PipelinePlanError } from './PipelinePlanError.js';
import { stemParameterNames, type StageRange } from './PipelineStage.js';

/** Float32 bytes of a model's parameters by part (what a stage holds in memory once loaded). */
export interface ModelTensorBytes {
  /** Per block, in order. */
  blocks: number[];
  /** Embedding side (first stage). */
  embedding: number;
  /** Final norm and head (last stage), with the embedding when the head is tied to it. */
  head: number;
  /** The largest single tensor (the loader's host scratch buffer). */
  largestTensor: number;
  /** Every parameter once. */
  total: number;
}

export function modelTensorBytes(config: ModelConfig): ModelTensorBytes {
  const family = familyOf(config);
  const stem = stemParameterNames(family, config);
  const blocks = new Array<number>(config.nLayer).fill(0);
  const bytesOf = new Map<string, number>();
  let largestTensor = 0;
  let total = 0;
  for (const spec of expectedParameters(config)) {
    const bytes = 4 * spec.shape.reduce((a, b) => a * b, 1);
    bytesOf.set(spec.name, bytes);
    largestTensor = Math.max(largestTensor, bytes);
    total += bytes;
    const block = family.naming.blockIndex(spec.name);
    if (block !== undefined) blocks[block] += bytes;
  }
  const sum = (names: string[]) => names.reduce((n, name) => n + (bytesOf.get(name) ?? 0), 0);
  return { blocks, embedding: sum(stem.embedding), head: sum([...stem.head, ...stem.tiedEmbedding]), largestTensor, total };
}

export interface PlanOptions {
  /** Memory each available worker may use, bytes (`workerMemoryBytes()` on each); stage i runs on worker i. */
  budgets: number[];
  /**
   * Per-process memory that is not the model: Node, tfjs and its wasm module, the ZeroMQ buffers.
   * Default 320 MiB (measured: a worker process with the wasm backend and no model peaks at about
   * 250 MiB RSS; `npm run bench -- pipeline` prints the figure of the machine it runs on).
   */
  fixedOverheadBytes?: number;
  /**
   * Activation headroom per stage, bytes: the hidden states of the micro-batches in flight (received,
   * computing, being sent) and one block's intermediates. Default `activationBytesEstimate(config, 1, maxPositions)`.
   */
  activationBytes?: number;
  /**
   * Extra memory per byte of weights (default 0.05): allocator slack of the backend's heap. The loader's
   * host scratch (the largest tensor) is added on top.
   */
  weightSlack?: number;
  /** Most weight bytes one stage may hold whatever its budget (default: none; the wasm heap caps a process near 4 GiB, so pass ~3.5 GiB there). */
  maxStageWeightBytes?: number;
}

export interface PlannedStage extends StageRange {
  index: number;
  /** Float32 weight bytes the stage holds. */
  weightBytes: number;
  /** What the plan expects the stage's process to use at most: fixed overhead + weights·(1 + slack) + scratch + activations. */
  estimatedBytes: number;
  /** The budget of the worker it is planned for. */
  budgetBytes: number;
}

export interface StagePlan {
  stages: PlannedStage[];
  modelBytes: number;
  /** The settings the plan used, for the log line. */
  fixedOverheadBytes: number;
  activationBytes: number;
  weightSlack: number;
}

/**
 * Rough upper bound of one stage's activation memory for `microBatch` rows of `seq` tokens (float32):
 * two hidden states on the wire plus one block's intermediates (q, k, v, attention scores and the MLP's
 * widest tensors), and the last stage's logits twice (head output and the loss' softmax).
 */
export function activationBytesEstimate(config: ModelConfig, microBatch: number, seq: number): number {
  const rows = microBatch * seq;
  const hidden = rows * config.hiddenSize;
  const attention = microBatch * config.nHead * seq * seq * 2 + rows * (config.nHead + 2 * config.nKvHead) * config.headDim;
  const mlp = rows * config.intermediateSize * 3;
  const logits = rows * config.vocabSize * 2;
  return 4 * (4 * hidden + attention + mlp + logits);
}

/**
 * Cuts a model into contiguous stages, one per worker, from the workers' memory budgets and the model's
 * tensor sizes: as few stages as fit (one when the model fits one worker: nothing changes), then the
 * cuts balanced so the largest stage is as small as possible (the pipeline runs at its slowest stage's
 * pace). PipelinePlanError DOES_NOT_FIT when even every worker given cannot hold the model.
 */
export function planStages(config: ModelConfig, options: PlanOptions): StagePlan {
  const bytes = modelTensorBytes(config);
  const fixedOverheadBytes = options.fixedOverheadBytes ?? 320 * 2 ** 20;
  const activationBytes = options.activationBytes ?? activationBytesEstimate(config, 1, config.maxPositions);
  const weightSlack = options.weightSlack ?? 0.05;
  const budgets = options.budgets;
  if (budgets.length === 0 || budgets.some((b) => !(Number.isFinite(b) && b > 0))) {
    throw new PipelinePlanError('BAD_MEMORY_SETTING', `worker memory budgets must be positive byte counts, got [${budgets.join(', ')}]`);
  }
  const n = config.nLayer;
  const weightsOf = (from: number, to: number) => {
    let w = 0;
    for (let i = from; i < to; i++) w += bytes.blocks[i];
    if (from === 0) w += bytes.embedding;
    if (to === n) w += bytes.head;
    return w;
  };
  const estimate = (weights: number) => fixedOverheadBytes + weights * (1 + weightSlack) + bytes.largestTensor + activationBytes;
  const fitsOn = (worker: number, from: number, to: number, cap: number) => {
    const w = weightsOf(from, to);
    return w <= cap && (options.maxStageWeightBytes === undefined || w <= options.maxStageWeightBytes) && estimate(w) <= budgets[worker];
  };
  // Greedy left to right (stage j on worker j, each stage as long as it fits under `cap`): optimal
  // for contiguous cuts, so it decides feasibility, and the binary search over `cap` balances.
  const cut = (cap: number): StageRange[] | undefined => {
    const ranges: StageRange[] = [];
    let from = 0;
    while (from < n) {
      const worker = ranges.length;
      if (worker >= budgets.length) return undefined;
      let to = from;
      while (to < n && fitsOn(worker, from, to + 1, cap)) to++;
      if (to === from) return undefined;
      ranges.push({ from, to });
      from = to;
    }
    return ranges;
  };
  const loose = cut(Number.POSITIVE_INFINITY);
  if (!loose) {
    const largestBlock = Math.max(...bytes.blocks);
    const required = Math.ceil(estimate(bytes.total) / Math.max(...budgets));
    throw new PipelinePlanError(
      'DOES_NOT_FIT',
      `the ${(bytes.total / 2 ** 30).toFixed(2)} GiB (float32) ${n}-block model does not fit ${budgets.length} worker(s) of at most ${(Math.max(...budgets) / 2 ** 30).toFixed(2)} GiB each ` +
        `(every stage also needs ${(fixedOverheadBytes / 2 ** 20).toFixed(0)} MiB fixed overhead, ${(activationBytes / 2 ** 20).toFixed(0)} MiB activations and the largest tensor as scratch); ` +
        `add workers (about ${Math.max(required, budgets.length + 1)} needed) or raise SCALEOT_WORKER_MEMORY_BYTES / the pods' memory limit`,
      { requiredWorkers: Math.max(required, budgets.length + 1), workers: budgets.length, largestBlockBytes: largestBlock, budgetBytes: Math.max(...budgets) },
    );
  }
  let ranges = loose;
  if (loose.length > 1) {
    // Smallest cap that still needs no more stages than the greedy fill.
    let lo = Math.max(...bytes.blocks);
    let hi = Math.max(...loose.map((r) => weightsOf(r.from, r.to)));
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      const tried = cut(mid);
      if (tried && tried.length <= loose.length) hi = mid;
      else lo = mid;
    }
    const balanced = cut(hi);
    if (balanced && balanced.length <= loose.length) ranges = balanced;
  }
  return {
    stages: ranges.map((r, index) => {
      const weightBytes = weightsOf(r.from, r.to);
      return { index, ...r, weightBytes, estimatedBytes: Math.ceil(estimate(weightBytes)), budgetBytes: budgets[index] };
    }),
    modelBytes: bytes.total,
    fixedOverheadBytes,
    activationBytes,
    weightSlack,
  };
}
