import { atomicWriteFile } from '@scaleot/core';
import type { Stage1HyperParameters } from '@scaleot/scaleot';
import { Command } from 'commander';
import { join } from 'node:path';
import { adapterOptions } from '../adapterFlags.js';
import { finiteNumber, intList, nonNegativeInt, positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';
import { refuseExistingOutput } from '../outputGuard.js';

interface Stage1Flags extends GlobalOptions {
  model: string;
  out: string;
  corpus: string;
  dataRoot: string;
  maxDocuments?: number;
  adapters?: number[];
  nAdapters?: number;
  steps?: number;
  batch?: number;
  microBatch?: number;
  seqLen?: number;
  lr?: number;
  warmup?: number;
  rank?: number;
  candidates?: number;
  rlBatch?: number;
  eta?: number;
  alignWeight?: number;
  seed?: number;
  checkpointEvery?: number;
  resume: boolean;
  overwrite?: boolean;
}

export function stage1Command(): Command {
  return withGlobalOptions(
    new Command('stage1')
      .summary('ScaleOT stage 1: learn layer importance and train harmonizers (once per model)')
      .description('Dynamic LayerReplace on the owner\'s corpus: each step samples a grouped mask from the scores, trains the harmonizers of the replaced blocks on the LM loss (original weights frozen), and updates the importance scores by REINFORCE from candidate rollouts on a held-out batch. Writes manifest.json, scores.json, harmonizers.safetensors, stage1-log.jsonl and the plots importance.svg / trajectories.svg; checkpoints every N steps and resumes exactly.')
      .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
      .requiredOption('--out <dir>', 'stage-1 artifact directory')
      .option('--corpus <task>', 'the owner\'s public corpus (an LM task)', 'sotu')
      .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
      .option('--max-documents <n>', 'use only the first N documents of each split', positiveInt)
      .option('--adapters <list>', 'adapter blocks, always raw: a sandwich (e.g. 0,1,10,11) or blocks at several depths (CRaSh-style, e.g. 0,4,7,11: groups never straddle an adapter)', intList)
      .option('--n-adapters <n>', 'N_a (default 4)', positiveInt)
      .option('--steps <n>', 'harmonizer optimizer steps (default 300)', positiveInt)
      .option('--batch <n>', 'windows per step (default 16)', positiveInt)
      .option('--micro-batch <n>', 'windows per forward/backward (default 4)', positiveInt)
      .option('--seq-len <n>', 'tokens per window (default: the model context)', positiveInt)
      .option('--lr <x>', 'harmonizer AdamW peak learning rate (default 1e-3)', finiteNumber)
      .option('--warmup <n>', 'warmup steps (default 20)', nonNegativeInt)
      .option('--rank <n>', 'harmonizer rank (default d/2)', positiveInt)
      .option('--candidates <n>', 'N_c candidate masks per importance update (default 3)', positiveInt)
      .option('--rl-batch <n>', 'held-out windows each candidate is scored on (default 8)', positiveInt)
      .option('--eta <x>', 'score learning rate η (default 0.05)', finiteNumber)
      .option('--align-weight <x>', 'harmonizer alignment (local distillation) weight, 0 = off (default 1)', finiteNumber)
      .option('--seed <n>', 'seed of masks, windows and init (default 0)', nonNegativeInt)
      .option('--checkpoint-every <n>', 'checkpoint every N steps (default 50)', positiveInt)
      .option('--no-resume', 'start over even if a checkpoint exists')
      .option('--overwrite', 'replace a completed stage-1 directory'),
  ).action(async (flags: Stage1Flags) => {
    await runCommand('stage1', flags, async (log) => {
      // A checkpoint of an unfinished run is what resuming (the default) continues from.
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite, resumable: [`${flags.out}/checkpoint`] });
      const { initBackend } = await import('@scaleot/backend');
      const { runStage1, layerImportance } = await import('@scaleot/scaleot');
      const { layerImportanceChart, scoreTrajectoryChart } = await import('@scaleot/plots');
      await initBackend(flags.backend);
      const layout = await adapterOptions(flags.model, flags.adapters, flags.nAdapters);
      const hyper: Partial<Stage1HyperParameters> = Object.fromEntries(
        Object.entries({
          nAdapter: layout.nAdapter,
          bottom: layout.bottom,
          adapterBlocks: layout.blocks ? [...layout.blocks] : undefined,
          steps: flags.steps,
          batchSize: flags.batch,
          microBatchSize: flags.microBatch,
          seqLen: flags.seqLen,
          lr: flags.lr,
          warmupSteps: flags.warmup,
          rank: flags.rank,
          candidates: flags.candidates,
          rlBatchSize: flags.rlBatch,
          eta: flags.eta,
          alignWeight: flags.alignWeight,
          seed: flags.seed,
        }).filter(([, v]) => v !== undefined),
      );
      const r = await runStage1({
        modelDir: flags.model,
        outDir: flags.out,
        corpus: flags.corpus,
        dataRoot: flags.dataRoot,
        maxDocuments: flags.maxDocuments,
        checkpointEvery: flags.checkpointEvery,
        resume: flags.resume,
        overwrite: flags.overwrite,
        logger: log,
        ...hyper,
      });
      const importance = await layerImportance(r.outDir);
      await atomicWriteFile(join(r.outDir, 'importance.svg'), await layerImportanceChart(importance.blocks));
      await atomicWriteFile(join(r.outDir, 'trajectories.svg'), await scoreTrajectoryChart(importance.trajectories));
      const table = importance.blocks
        .map((b) => `block ${String(b.index).padStart(2)}  ${b.role.padEnd(7)} ${b.score === null ? '   n/a' : b.score.toFixed(3).padStart(6)}`)
        .join('\n');
      return {
        result: { outDir: r.outDir, steps: r.steps, seconds: r.seconds, scores: r.scores, importance: importance.blocks },
        human: `stage 1 done in ${r.seconds.toFixed(0)} s (${r.steps} steps) -> ${r.outDir}\n${table}`,
      };
    });
  });
}
