import type { TrainHyperParameters } from '@scaleot/offsite';
import type { Command } from 'commander';
import { finiteNumber, nonNegativeInt, positiveInt } from './cliSupport.js';

/** The tuning flags shared by `tune` and `report` (defaults are @scaleot/offsite's DEFAULT_TRAIN). */
export interface TrainFlags {
  steps?: number;
  batch?: number;
  microBatch?: number;
  seqLen?: number;
  lr?: number;
  warmup?: number;
  finalLrFraction?: number;
  gradClip?: number;
  weightDecay?: number;
  seed?: number;
  maxTrainRows?: number;
  loraRank?: number;
  loraAlpha?: number;
}

export function withTrainFlags(cmd: Command): Command {
  return cmd
    .option('--steps <n>', 'optimizer steps (default 300)', positiveInt)
    .option('--batch <n>', 'rows per step (default 16)', positiveInt)
    .option('--micro-batch <n>', 'rows per forward/backward; gradients are accumulated (default 4)', positiveInt)
    .option('--seq-len <n>', 'LM window length in tokens (default: the model context)', positiveInt)
    .option('--lr <x>', 'peak learning rate (default 3e-4)', finiteNumber)
    .option('--warmup <n>', 'linear warmup steps (default 20)', nonNegativeInt)
    .option('--final-lr-fraction <x>', 'cosine floor as a fraction of lr (default 0.1)', finiteNumber)
    .option('--grad-clip <x>', 'max global gradient norm (default 1.0)', finiteNumber)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (default 0.01)', finiteNumber)
    .option('--seed <n>', 'seed of data sampling and initialisation (default 0)', nonNegativeInt)
    .option('--max-train-rows <n>', 'train on the first N rows of the train split only', positiveInt)
    .option('--lora-rank <n>', 'tune LoRA factors of this rank inside the adapter blocks instead of the whole blocks', positiveInt)
    .option('--lora-alpha <x>', 'LoRA scaling alpha (default: 2 x rank)', finiteNumber);
}

/** Only the flags the user gave, so the library defaults stay the single source of truth. */
export function trainHyper(f: TrainFlags): Partial<TrainHyperParameters> {
  const h: Partial<TrainHyperParameters> = {
    steps: f.steps,
    batchSize: f.batch,
    microBatchSize: f.microBatch,
    seqLen: f.seqLen,
    lr: f.lr,
    warmupSteps: f.warmup,
    finalLrFraction: f.finalLrFraction,
    gradClip: f.gradClip,
    weightDecay: f.weightDecay,
    seed: f.seed,
    maxTrainRows: f.maxTrainRows,
  };
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Partial<TrainHyperParameters>;
}

export function loraSpec(f: TrainFlags): { rank: number; alpha: number } | undefined {
  if (f.loraRank === undefined) return undefined;
  return { rank: f.loraRank, alpha: f.loraAlpha ?? 2 * f.loraRank };
}

/** `--threads`, shared by the commands that train through the data-parallel loop (`tune`, `audit`). */
export function withThreadsFlag(cmd: Command): Command {
  return cmd.option(
    '--threads <n>',
    'threads computing gradients, data-parallel (default: available cores, capped by the cgroup CPU limit and SCALEOT_THREADS); the result equals 1 thread up to float rounding',
    positiveInt,
  );
}
