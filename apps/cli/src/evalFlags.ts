import type { Command } from 'commander';
import { positiveInt } from './cliSupport.js';

/** The evaluation flags shared by `report` and `audit` (default: the task's full protocol). */
export interface EvalFlags {
  evalBatch?: number;
  maxBlocks?: number;
  maxExamples?: number;
}

export function withEvalFlags(cmd: Command): Command {
  return cmd
    .option('--eval-batch <n>', 'sequences per evaluation forward pass (default 8)', positiveInt)
    .option('--max-blocks <n>', 'LM: evaluate the first N test blocks only (default: the protocol, all)', positiveInt)
    .option('--max-examples <n>', 'classification: evaluate the first N test rows only (default: all)', positiveInt);
}

/** The library's evaluation settings from the flags. */
export function evalSettings(f: EvalFlags): { batchSize?: number; maxBlocks?: number; maxExamples?: number } {
  return { batchSize: f.evalBatch, maxBlocks: f.maxBlocks, maxExamples: f.maxExamples };
}
