import { describe, expect, it } from 'vitest';
import { createRng, multipleChoiceAccuracy, perplexity, type ClassificationExample, type ScoringProgress } from '@scaleot/data';

const VOCAB = 16;

/** A fixed random bigram model: logp[a][b] = log p(b | a), each row normalised in float64. */
function bigramTable(seed: number): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: VOCAB }, () => {
    const weights = Array.from({ length: VOCAB }, () => 0.05 + rng.next());
    const total = weights.reduce((s, w) => s + w, 0);
    return weights.map((w) => Math.log(w / total));
  });
}

/** The scorer a model would be: for each (padded) sequence, value i is about token i + 1. */
function bigramScorer(logp: number[][], sign: 1 | -1, seen: number[][] = []) {
  return async (batch: Int32Array[]): Promise<Float32Array[]> => {
    const length = batch[0].length;
    for (const seq of batch) expect(seq.length).toBe(length);
    seen.push(batch.map((s) => s.length));
    return batch.map((seq) => Float32Array.from({ length: length - 1 }, (_, i) => sign * logp[seq[i]][seq[i + 1]]));
  };
}

function randomSequence(rng: ReturnType<typeof createRng>, length: number): Int32Array {
  return Int32Array.from({ length }, () => rng.uniformInt(1, VOCAB));
}

describe('perplexity', () => {
  const logp = bigramTable(11);

  it('is exp(Σ NLL / Σ predicted tokens) over blocks of one length, matching a float64 hand computation', async () => {
    const rng = createRng(1);
    const blocks = Array.from({ length: 13 }, () => randomSequence(rng, 33));
    let total = 0;
    let count = 0;
    for (const b of blocks) {
      for (let i = 1; i < b.length; i++) {
        total += -Math.fround(logp[b[i - 1]][b[i]]);
        count++;
      }
    }
    const progress: ScoringProgress[] = [];
    const result = await perplexity(blocks, bigramScorer(logp, -1), { batchSize: 4, onProgress: (p) => progress.push(p) });
    expect(result.tokens).toBe(13 * 32);
    expect(result.totalNll).toBeCloseTo(total, 9);
    expect(result.nll).toBeCloseTo(total / count, 12);
    expect(Math.abs(result.perplexity / Math.exp(total / count) - 1)).toBeLessThan(1e-12);
    expect(progress.map((p) => p.done)).toEqual([4, 8, 12, 13]);
    expect(progress.every((p) => p.total === 13)).toBe(true);
  });

  it('handles blocks of different lengths: batches are rectangular and padding never counts', async () => {
    const rng = createRng(2);
    const lengths = [5, 9, 2, 9, 7, 3, 9, 5];
    const blocks = lengths.map((n) => randomSequence(rng, n));
    let total = 0;
    for (const b of blocks) for (let i = 1; i < b.length; i++) total += -Math.fround(logp[b[i - 1]][b[i]]);
    const seen: number[][] = [];
    const result = await perplexity(blocks, bigramScorer(logp, -1, seen), { batchSize: 3, padId: 0 });
    expect(result.tokens).toBe(lengths.reduce((s, n) => s + n - 1, 0));
    expect(result.totalNll).toBeCloseTo(total, 9);
    // Longest first: [9, 9, 9], [7, 5→7, 5→7], [3, 2→3].
    expect(seen).toEqual([[9, 9, 9], [7, 7, 7], [3, 3]]);
  });

  it('accumulates in float64', async () => {
    const value = Math.fround(0.1);
    const blocks = Array.from({ length: 2000 }, () => new Int32Array(501));
    const result = await perplexity(blocks, async (batch) => batch.map((s) => new Float32Array(s.length - 1).fill(value)), { batchSize: 64 });
    expect(result.tokens).toBe(1_000_000);
    // A float32 running sum of 10^6 × 0.1 is off by ~1e-3 relative; float64 is exact to ~1e-12.
    expect(Math.abs(result.totalNll / (1e6 * value) - 1)).toBeLessThan(1e-10);
  });

  it('rejects a scorer that returns too few values or NaN', async () => {
    const blocks = [new Int32Array(5)];
    await expect(perplexity(blocks, async () => [new Float32Array(3)])).rejects.toThrow(/expected 4/);
    await expect(perplexity(blocks, async () => [new Float32Array(4).fill(NaN)])).rejects.toThrow(/NaN/);
  });
});

describe('multipleChoiceAccuracy', () => {
  const logp = bigramTable(21);

  /** Score of a candidate computed directly from the bigram table, in float64 over float32 values. */
  function handScore(prompt: number[], candidate: number[]): number {
    let prev = prompt[prompt.length - 1];
    let score = 0;
    for (const token of candidate) {
      score += Math.fround(logp[prev][token]);
      prev = token;
    }
    return score;
  }

  it('sums candidate-token log-probabilities after the prompt and picks the best, matching a hand computation', async () => {
    const rng = createRng(3);
    const examples: ClassificationExample[] = Array.from({ length: 41 }, () => ({
      promptIds: Array.from(randomSequence(rng, rng.uniformInt(1, 12))),
      candidateIds: [[3, 4], [5], [6, 7, 8]],
      labelIndex: rng.uniformInt(0, 3),
    }));
    let expectedCorrect = 0;
    const expectedPredictions = examples.map((ex) => {
      const scores = ex.candidateIds.map((c) => handScore(ex.promptIds, c));
      const best = scores.indexOf(Math.max(...scores));
      if (best === ex.labelIndex) expectedCorrect++;
      return best;
    });
    const progress: ScoringProgress[] = [];
    const result = await multipleChoiceAccuracy(examples, bigramScorer(logp, 1), { batchSize: 5, onProgress: (p) => progress.push(p) });
    expect(result.total).toBe(41);
    expect(result.correct).toBe(expectedCorrect);
    expect(result.accuracy).toBe(expectedCorrect / 41);
    expect(result.predictions).toEqual(expectedPredictions);
    examples.forEach((ex, e) => ex.candidateIds.forEach((c, k) => expect(result.scores[e][k]).toBeCloseTo(handScore(ex.promptIds, c), 10)));
    // Not a degenerate case: the model gets some but not all right.
    expect(expectedCorrect).toBeGreaterThan(0);
    expect(expectedCorrect).toBeLessThan(41);
    expect(progress.at(-1)).toEqual({ done: 123, total: 123 });
  });

  it('gives ties to the first candidate', async () => {
    const examples: ClassificationExample[] = [
      { promptIds: [1, 2], candidateIds: [[3], [4]], labelIndex: 0 },
      { promptIds: [1, 2], candidateIds: [[3], [4]], labelIndex: 1 },
    ];
    const flat = async (batch: Int32Array[]) => batch.map((s) => new Float32Array(s.length - 1).fill(-1));
    const result = await multipleChoiceAccuracy(examples, flat);
    expect(result.predictions).toEqual([0, 0]);
    expect(result.correct).toBe(1);
  });

  it('rejects an empty prompt', async () => {
    await expect(multipleChoiceAccuracy([{ promptIds: [], candidateIds: [[1], [2]], labelIndex: 0 }], bigramScorer(logp, 1))).rejects.toThrow(/empty prompt/);
  });
});
