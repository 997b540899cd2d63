import { InvalidArgumentError, Option, type Command } from 'commander';
import { positiveInt } from './cliSupport.js';
import type { SelectionCriterion } from '@scaleot/scaleot';

/** A fraction in [0, 1) (α, β). */
export function fraction(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError(`expected a number in [0, 1), got "${value}"`);
  return n;
}

/** Comma-separated fractions in [0, 1), e.g. "0.25,0.5,0.75". */
export function fractionList(value: string): number[] {
  return value.split(',').map((s) => fraction(s.trim()));
}

/** `--method scaleot` flags shared by `emulate` and `report`. */
export interface ScaleotFlags {
  stage1?: string;
  alpha: number;
  beta: number;
  mode: 'replace' | 'drop' | 'uniform-replace';
  srcStorage: 'dense' | 'factors';
  /** Default: the model family's attention projections. */
  srcTargets?: string[];
  /** Which criterion picks the compressed blocks. Default 'importance' (stage 1's scores). */
  select: SelectionCriterion;
  /** GradOT: windows of the owner's corpus measured on (default 8), their length (default: the model context), w, the corpus. */
  selectBatch: number;
  selectSeqLen?: number;
  selectLossWeight: number;
  selectCorpus: string;
}

export function withScaleotFlags(cmd: Command): Command {
  return cmd
    .option('--stage1 <dir>', 'scaleot: stage-1 artifacts of the model (needed unless --alpha 0)')
    .option('--alpha <x>', 'scaleot: fraction of each group of 4 middle blocks replaced by harmonizers', fraction, 0.5)
    .option('--beta <x>', 'scaleot: fraction of rank removed from attention projections of raw middle blocks (SRC)', fraction, 0)
    .addOption(new Option('--mode <m>', 'scaleot: replace (ScaleOT), drop (dynamic LayerDrop) or uniform-replace (ablations)').choices(['replace', 'drop', 'uniform-replace']).default('replace'))
    .addOption(new Option('--src-storage <s>', 'scaleot: store compressed matrices dense or as factors').choices(['dense', 'factors']).default('dense'))
    .option(
      '--src-targets <list>',
      "scaleot: block-relative modules SRC compresses (default: the family's attention projections — GPT-2 attn.c_attn,attn.c_proj; OPT/LLaMA self_attn.{q,k,v}_proj and out_proj/o_proj; add the MLP's to weaken the emulator further)",
      (value: string) => value.split(',').map((s) => s.trim()).filter(Boolean),
    )
    .addOption(
      new Option(
        '--select <criterion>',
        "scaleot: which blocks of each group are compressed: importance (stage 1's scores, lowest replaced) or gradot (measured on --select-batch windows of the owner's corpus: each middle block replaced alone by its harmonizer — removed with --mode drop —, gradChange = relative L2 change of the adapter blocks' gradient, lossChange = LM loss change; keep = gradChange/mean(gradChange) − w·lossChange/mean|lossChange|, lowest replaced; recorded in the emulator manifest) or gradot-greedy (the same score, blocks chosen one at a time, each candidate measured with the blocks chosen before it compressed too)",
      )
        .choices(['importance', 'gradot', 'gradot-greedy'])
        .default('importance'),
    )
    .option('--select-batch <n>', 'scaleot --select gradot*: windows of the owner corpus (train split, seed 0)', positiveInt, 8)
    .option('--select-seq-len <n>', 'scaleot --select gradot*: tokens per window (default: the model context)', positiveInt)
    .option('--select-loss-weight <x>', 'scaleot --select gradot*: w, the weight of the loss change against the gradient change (0 = gradient change only)', nonNegativeNumber, 1)
    .option('--select-corpus <task>', 'scaleot --select gradot*: the owner corpus (an LM task)', 'sotu');
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a finite number ≥ 0, got "${value}"`);
  return n;
}

/** Builds a ScaleOT emulator artifact from the flags. */
export async function buildScaleotFromFlags(modelDir: string, outDir: string, flags: ScaleotFlags, layout: { nAdapter?: number; bottom?: number; blocks?: readonly number[] }, overwrite: boolean | undefined, dataRoot: string) {
  const { buildScaleotEmulator } = await import('@scaleot/scaleot');
  return buildScaleotEmulator({
    modelDir,
    stage1Dir: flags.stage1,
    outDir,
    nAdapter: layout.nAdapter,
    bottom: layout.bottom,
    adapterBlocks: layout.blocks,
    alpha: flags.alpha,
    beta: flags.beta,
    mode: flags.mode,
    srcStorage: flags.srcStorage,
    srcTargets: flags.srcTargets,
    select: flags.select,
    gradot: { batchSize: flags.selectBatch, seqLen: flags.selectSeqLen, lossWeight: flags.selectLossWeight, corpus: flags.selectCorpus, dataRoot },
    overwrite,
  });
}
