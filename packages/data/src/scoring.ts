import type { ClassificationExample } from './classification.js';

/**
 * Scorers are the model, injected so this package stays model-free. Each receives a batch of
 * sequences of one length T (shorter ones right-padded with `padId`; with a causal model padding after
 * a sequence cannot change the values at its real positions, and those at padded positions are ignored)
 * and returns, per sequence, T − 1 values where value i is about token i + 1 given tokens 0…i.
 */
export type NllFn = (batch: Int32Array[]) => Promise<Float32Array[]>;
/** Like NllFn but returns log p(ids[i+1] | ids[0..i]) (≤ 0) instead of its negation. */
export type LogprobFn = (batch: Int32Array[]) => Promise<Float32Array[]>;

export interface ScoringProgress {
  /** Sequences scored so far. */
  done: number;
  total: number;
}

export interface ScoringOptions {
  /** Sequences per scorer call. Default: 8. */
  batchSize?: number;
  /** Id written after shorter sequences of a batch. Default: 0. */
  padId?: number;
  /** Called after every scorer call. Default: none. */
  onProgress?: (progress: ScoringProgress) => void;
}

export interface PerplexityResult {
  /** exp(nll). */
  perplexity: number;
  /** Mean NLL per predicted token (nats): totalNll / tokens. */
  nll: number;
  /** Sum of the NLL of every predicted token, accumulated in float64. */
  totalNll: number;
  /** Number of predicted tokens: Σ (block length − 1). */
  tokens: number;
}

export interface MultipleChoiceResult {
  accuracy: number;
  correct: number;
  total: number;
  /** Predicted candidate index per example (ties go to the first candidate). */
  predictions: number[];
  /** Score (sum of candidate-token log-probabilities) per example and candidate. */
  scores: number[][];
}

/**
 * Perplexity of LM blocks: exp(Σ NLL / Σ (len − 1)); block i predicts its tokens 1…len−1.
 */
export async function perplexity(blocks: readonly Int32Array[], nllFn: NllFn, options: ScoringOptions = {}): Promise<PerplexityResult> {
  if (blocks.length === 0) throw new RangeError('perplexity needs at least one block');
  let totalNll = 0;
  let tokens = 0;
  await scoreSequences(blocks, nllFn, options, (index, values) => {
    const n = blocks[index].length - 1;
    for (let i = 0; i < n; i++) totalNll += values[i];
    tokens += n;
  });
  if (tokens === 0) throw new RangeError('perplexity needs blocks of at least two tokens');
  const nll = totalNll / tokens;
  return { perplexity: Math.exp(nll), nll, totalNll, tokens };
}

/**
 * Multiple-choice accuracy, lm-eval style: each candidate is scored as the sum of the log-probabilities
 * of its tokens after the prompt; the prediction is the highest score, and on an exact tie the first
 * candidate (in `candidateIds` order) wins.
 */
export async function multipleChoiceAccuracy(
  examples: readonly ClassificationExample[],
  logprobFn: LogprobFn,
  options: ScoringOptions = {},
): Promise<MultipleChoiceResult> {
  if (examples.length === 0) throw new RangeError('multipleChoiceAccuracy needs at least one example');
  const sequences: Int32Array[] = [];
  const owner: Array<{ example: number; candidate: number }> = [];
  examples.forEach((ex, e) => {
    if (ex.promptIds.length === 0) throw new RangeError(`example ${e}: empty prompt; the first candidate token needs context`);
    ex.candidateIds.forEach((cand, c) => {
      sequences.push(Int32Array.from([...ex.promptIds, ...cand]));
      owner.push({ example: e, candidate: c });
    });
  });
  const scores = examples.map((ex) => new Array<number>(ex.candidateIds.length).fill(0));
  await scoreSequences(sequences, logprobFn, options, (index, values) => {
    const { example, candidate } = owner[index];
    const promptLength = examples[example].promptIds.length;
    const candidateLength = examples[example].candidateIds[candidate].length;
    // Candidate token j sits at position promptLength + j and is predicted from position promptLength + j − 1.
    let score = 0;
    for (let j = 0; j < candidateLength; j++) score += values[promptLength - 1 + j];
    scores[example][candidate] = score;
  });
  let correct = 0;
  const predictions = scores.map((row, e) => {
    let best = 0;
    for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
    if (best === examples[e].labelIndex) correct++;
    return best;
  });
  return { accuracy: correct / examples.length, correct, total: examples.length, predictions, scores };
}

/**
 * Calls `scorer` on batches of equal-length (right-padded) sequences and hands each sequence's values
 * to `consume` by its index. Sequences are sorted longest first, so padding is minimal and a batch too
 * big for memory fails on the first call.
 */
async function scoreSequences(
  sequences: readonly Int32Array[],
  scorer: NllFn,
  options: ScoringOptions,
  consume: (index: number, values: Float32Array) => void,
): Promise<void> {
  const batchSize = options.batchSize ?? 8;
  const padId = options.padId ?? 0;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[b].length - sequences[a].length || a - b);
  let done = 0;
  for (let start = 0; start < order.length; start += batchSize) {
    const indices = order.slice(start, start + batchSize);
    const length = sequences[indices[0]].length;
    if (length < 2) throw new RangeError(`sequence ${indices[0]} has ${length} token(s); scoring needs at least two`);
    const batch = indices.map((i) => {
      const seq = sequences[i];
      if (seq.length === length) return seq;
      const padded = new Int32Array(length).fill(padId);
      padded.set(seq);
      return padded;
    });
    const values = await scorer(batch);
    if (values.length !== batch.length) throw new Error(`scorer returned ${values.length} rows for a batch of ${batch.length}`);
    indices.forEach((index, k) => {
      const row = values[k];
      const needed = sequences[index].length - 1;
      if (row.length < needed) throw new Error(`scorer returned ${row.length} values for a sequence of ${length} tokens; expected ${length - 1}`);
      for (let i = 0; i < needed; i++) {
        if (Number.isNaN(row[i])) throw new Error(`scorer returned NaN at position ${i} of sequence ${index}`);
      }
      consume(index, row);
    });
    done += indices.length;
    options.onProgress?.({ done, total: sequences.length });
  }
}
