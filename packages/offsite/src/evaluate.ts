import { Progress, type Logger } from '@scaleot/core';
import {
  classificationExamples,
  lmDocuments,
  lmEvalBlocks,
  lmStream,
  multipleChoiceAccuracy,
  perplexity,
  taskRows,
  type Task,
  type TokenEncoder,
} from '@scaleot/data';
import { loadModel, type CausalLM } from '@scaleot/model';
import { Tokenizer } from '@scaleot/tokenizer';
import { applyAdapter, readAdapter } from './adapterArtifact.js';
import { loadEmulator } from './emulator.js';
import { nllScorer } from './lmMath.js';
import { OffsiteError } from './OffsiteError.js';
import { resolveTask, type TaskInput } from './taskInput.js';

export interface EvalOptions {
  /** Sequences per forward pass (bounds the wasm heap). Default 8. */
  batchSize?: number;
  /** LM: score only the first N evaluation blocks. Default: all (the protocol). */
  maxBlocks?: number;
  /** Classification: score only the first N test rows. Default: all (the protocol). */
  maxExamples?: number;
  logger?: Logger;
  /** Progress label. Default 'eval'. */
  label?: string;
  /** Called after every scored batch. */
  onProgress?: (p: { done: number; total: number }) => void;
}

export type Metric = 'perplexity' | 'accuracy';

export interface EvalResult {
  task: string;
  metric: Metric;
  value: number;
  /** LM: predicted tokens; classification: examples. */
  count: number;
  /** LM: mean NLL per token (nats). */
  nll?: number;
  /** Classification: correct predictions. */
  correct?: number;
  seconds: number;
}

/** The metric a task is reported with (perplexity: lower is better; accuracy: higher is better). */
export function taskMetric(task: Task): Metric {
  return task.spec.type === 'lm' ? 'perplexity' : 'accuracy';
}

/**
 * Evaluates a model on a task's test split with the fixture protocols: LM = perplexity over
 * non-overlapping blocks of n_positions + 1 tokens of the test stream; classification = lm-eval style
 * multiple-choice accuracy (sum of candidate-token log-probabilities after the prompt).
 */
export async function evaluateModel(model: CausalLM, task: Task, tokenizer: TokenEncoder, opts: EvalOptions = {}): Promise<EvalResult> {
  return evaluateScored({ maxPositions: model.config.maxPositions, nll: nllScorer(model) }, task, tokenizer, opts);
}

/**
 * What the protocols need of a model: its context and per-token NLL of rows (`nllScorer(model)` in this
 * process; a pipeline-parallel run's scorer spreads the rows over stage workers).
 */
export interface SequenceScorer {
  maxPositions: number;
  /** Rows of T tokens → NLL of tokens 1…T−1 given the ones before, per row. */
  nll: (batch: Int32Array[]) => Promise<Float32Array[]>;
}

/** {@link evaluateModel} over any scorer: the same protocols, batches and summation order. */
export async function evaluateScored(scorer: SequenceScorer, task: Task, tokenizer: TokenEncoder, opts: EvalOptions = {}): Promise<EvalResult> {
  const started = performance.now();
  const ctx = scorer.maxPositions;
  const where = task.files.test ?? task.specFile;
  let rows = taskRows(task, 'test');
  const scoring = (total: number) => {
    const progress = new Progress({ total, unit: 'sequence', label: opts.label ?? 'eval', logger: opts.logger });
    let last = 0;
    return {
      batchSize: opts.batchSize ?? 8,
      padId: tokenizer.eosTokenId,
      onProgress: (p: { done: number; total: number }) => {
        progress.tick(p.done - last);
        last = p.done;
        opts.onProgress?.(p);
      },
    };
  };
  if (task.spec.type === 'lm') {
    let blocks = lmEvalBlocks(lmStream(lmDocuments(rows, task.spec), tokenizer), ctx);
    if (opts.maxBlocks !== undefined) blocks = blocks.slice(0, opts.maxBlocks);
    if (blocks.length === 0) throw new OffsiteError('EMPTY_DATASET', `the test text is shorter than one evaluation block (${ctx + 1} tokens)`, { where });
    const r = await perplexity(blocks, scorer.nll, scoring(blocks.length));
    return { task: task.spec.name, metric: 'perplexity', value: r.perplexity, count: r.tokens, nll: r.nll, seconds: (performance.now() - started) / 1000 };
  }
  if (opts.maxExamples !== undefined) rows = rows.slice(0, opts.maxExamples);
  if (rows.length === 0) throw new OffsiteError('EMPTY_DATASET', 'no test rows to evaluate', { where });
  const examples = classificationExamples(rows, task.spec, tokenizer, ctx);
  const sequences = examples.reduce((n, ex) => n + ex.candidateIds.length, 0);
  const r = await multipleChoiceAccuracy(examples, async (batch) => (await scorer.nll(batch)).map((row) => row.map((v) => -v)), scoring(sequences));
  return { task: task.spec.name, metric: 'accuracy', value: r.accuracy, count: r.total, correct: r.correct, seconds: (performance.now() - started) / 1000 };
}

export interface EvaluateOptions extends EvalOptions {
  /** An HF model dir, or an emulator artifact dir (told apart by its emulator.json). Exactly one of modelDir/emulatorDir. */
  modelDir?: string;
  emulatorDir?: string;
  /** Plug these adapter weights in first (into the emulator or the full model). Default: none. */
  adapterDir?: string;
  task: TaskInput;
  /** Data root for built-in task names. Default ./data. */
  dataRoot?: string;
}

/** Path-level evaluation (the CLI's `eval`): loads the model or emulator (and adapter), evaluates, frees it. */
export async function evaluate(opts: EvaluateOptions): Promise<EvalResult> {
  if ((opts.modelDir === undefined) === (opts.emulatorDir === undefined)) {
    throw new OffsiteError('BAD_ARGUMENT', 'give exactly one of modelDir and emulatorDir', { where: 'evaluate' });
  }
  const task = await resolveTask(opts.task, opts.dataRoot);
  const dir = (opts.modelDir ?? opts.emulatorDir)!;
  const tokenizer = await Tokenizer.fromDir(dir);
  const adapter = opts.adapterDir ? await readAdapter(opts.adapterDir) : undefined;
  const model = opts.emulatorDir ? (await loadEmulator(opts.emulatorDir)).model : await loadModel(dir);
  try {
    if (adapter) applyAdapter(model, adapter);
    return await evaluateModel(model, task, tokenizer, opts);
  } finally {
    model.dispose();
  }
}
