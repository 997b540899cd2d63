import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROTOCOL_VERSION, lmDocuments, lmEvalBlocks, lmStream, loadTask, taskRows } from '@scaleot/data';
import { Tokenizer } from '@scaleot/tokenizer';

/** How a set of numbers was measured: what a reader needs to compare them with other runs. */
export interface EvaluationProtocol {
  task: string;
  metric: 'perplexity' | 'accuracy';
  higherIsBetter: boolean;
  /** What one evaluated unit is, e.g. `blocks of 1025 tokens` or `examples`. */
  unit: string;
  /** Units evaluated with the run's limits. */
  evaluated: number;
  /** Units the full protocol evaluates. */
  total: number;
  /** True when every unit of the test split was evaluated (numbers comparable with the full protocol's). */
  full: boolean;
  protocolVersion: number;
}

/**
 * Counts the units of a task's test split the way the evaluation protocols cut them (LM: non-overlapping
 * blocks of n_positions + 1 tokens; classification: rows), and how many `limits` keep.
 */
export async function evaluationProtocol(modelDir: string, taskName: string, dataRoot: string, limits: { maxBlocks?: number; maxExamples?: number } = {}): Promise<EvaluationProtocol> {
  const task = await loadTask(taskName, dataRoot);
  const rows = taskRows(task, 'test');
  if (task.spec.type === 'lm') {
    const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as { n_positions?: number; n_ctx?: number; max_position_embeddings?: number };
    const ctx = config.n_positions ?? config.n_ctx ?? config.max_position_embeddings ?? 1024;
    const tokenizer = await Tokenizer.fromDir(modelDir);
    const total = lmEvalBlocks(lmStream(lmDocuments(rows, task.spec), tokenizer), ctx).length;
    const evaluated = Math.min(total, limits.maxBlocks ?? total);
    return { task: task.spec.name, metric: 'perplexity', higherIsBetter: false, unit: `blocks of ${ctx + 1} tokens`, evaluated, total, full: evaluated === total, protocolVersion: PROTOCOL_VERSION };
  }
  const total = rows.length;
  const evaluated = Math.min(total, limits.maxExamples ?? total);
  return { task: task.spec.name, metric: 'accuracy', higherIsBetter: true, unit: 'examples', evaluated, total, full: evaluated === total, protocolVersion: PROTOCOL_VERSION };
}
