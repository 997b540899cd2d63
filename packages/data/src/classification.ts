import type { TokenEncoder } from './lm.js';
import { TaskError } from './TaskError.js';
import { candidateLabels, checkTaskRow, type ClassificationTaskSpec, type TaskRow } from './taskSpec.js';
import { parseTemplate, renderTemplate } from './template.js';

export interface ClassificationExample {
  /** Truncated prompt ids followed by the suffix ids: the context every candidate is scored after. */
  promptIds: number[];
  /** Ids of each candidate, in `candidateLabels(spec)` order. */
  candidateIds: number[][];
  /** Index of the correct candidate. */
  labelIndex: number;
}

export interface TrainSequence {
  /** Prompt ids followed by the correct candidate's ids. */
  ids: Int32Array;
  /**
   * Per position of `ids`: 1 where the token is a training target (the candidate tokens), else 0.
   * With next-token targets `ids[1..]`, the mask to apply is `lossMask.subarray(1)`.
   */
  lossMask: Float32Array;
}

/**
 * Classification examples, lm-eval style: the filled template is encoded and truncated to its first
 * `ctx − len(suffix) − max(len(candidate))` tokens, then the suffix ids follow; every piece is encoded
 * on its own and the id lists concatenated, so prompt + suffix + any candidate fits in `ctx`.
 */
export function classificationExamples(
  rows: readonly TaskRow[],
  spec: ClassificationTaskSpec,
  tokenizer: TokenEncoder,
  ctx: number,
): ClassificationExample[] {
  if (!Number.isInteger(ctx) || ctx < 1) throw new RangeError(`ctx must be a positive integer, got ${ctx}`);
  const where = `<task ${spec.name}>`;
  const template = parseTemplate(spec.promptTemplate, where);
  const labels = candidateLabels(spec);
  const candidateIds = labels.map((label) => tokenizer.encode(spec.candidates[label]));
  const suffixIds = tokenizer.encode(spec.suffix);
  candidateIds.forEach((ids, k) => {
    if (ids.length === 0) throw new TaskError('encodes to no tokens; a candidate must have at least one token to be scored', { file: where, field: `candidates.${labels[k]}` });
  });
  const budget = ctx - suffixIds.length - Math.max(...candidateIds.map((ids) => ids.length));
  if (budget < 1) {
    throw new TaskError(`leaves no room for the prompt: suffix (${suffixIds.length} tokens) + longest candidate must stay below ctx = ${ctx}`, { file: where, field: 'suffix' });
  }
  return rows.map((row, i) => {
    checkTaskRow(row, spec, where, i + 1, template);
    const promptIds = tokenizer.encode(renderTemplate(template, row)).slice(0, budget).concat(suffixIds);
    if (promptIds.length === 0) {
      throw new TaskError('gives an empty prompt and the suffix is empty: the first candidate token would have no context', { file: where, line: i + 1, field: 'promptTemplate' });
    }
    return {
      promptIds,
      candidateIds: candidateIds.map((ids) => ids.slice()),
      labelIndex: labels.indexOf(row[spec.labelField] as string),
    };
  });
}

/** The training sequence of an example: prompt + the correct candidate, loss only on the candidate tokens. */
export function classificationTrainSequence(example: ClassificationExample): TrainSequence {
  const candidate = example.candidateIds[example.labelIndex];
  const ids = Int32Array.from([...example.promptIds, ...candidate]);
  const lossMask = new Float32Array(ids.length);
  lossMask.fill(1, example.promptIds.length);
  return { ids, lossMask };
}
