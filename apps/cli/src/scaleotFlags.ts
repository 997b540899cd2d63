import { InvalidArgumentError, Option, type Command } from 'commander';

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
    );
}

/** Builds a ScaleOT emulator artifact from the flags. */
export async function buildScaleotFromFlags(modelDir: string, outDir: string, flags: ScaleotFlags, layout: { nAdapter?: number; bottom?: number }, overwrite?: boolean) {
  const { buildScaleotEmulator } = await import('@scaleot/scaleot');
  return buildScaleotEmulator({
    modelDir,
    stage1Dir: flags.stage1,
    outDir,
    nAdapter: layout.nAdapter,
    bottom: layout.bottom,
    alpha: flags.alpha,
    beta: flags.beta,
    mode: flags.mode,
    srcStorage: flags.srcStorage,
    srcTargets: flags.srcTargets,
    overwrite,
  });
}
