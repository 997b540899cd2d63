import type { LayerSelection } from '@scaleot/offsite';
import { Command, Option } from 'commander';
import { adapterOptions } from '../adapterFlags.js';
import { intList, nonNegativeInt, positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';
import { buildScaleotFromFlags, withScaleotFlags, type ScaleotFlags } from '../scaleotFlags.js';
import { trainHyper, withTrainFlags, type TrainFlags } from '../trainFlags.js';
import { refuseExistingOutput } from '../outputGuard.js';

interface EmulateFlags extends GlobalOptions, TrainFlags, ScaleotFlags {
  model: string;
  out: string;
  method: 'uniform' | 'scaleot';
  adapters?: number[];
  nAdapters?: number;
  drop?: number[];
  keepLayers?: number[];
  keep?: number;
  distill?: boolean;
  distillCorpus: string;
  dataRoot: string;
  overwrite?: boolean;
}

export function emulateCommand(): Command {
  const cmd = new Command('emulate')
    .summary('cut an emulator (adapter blocks + compressed middle) from a full model')
    .description('Model owner side. --method scaleot builds the (N_a, α, β) emulator from stage-1 artifacts: the lowest-scored round(4α) blocks of each group of 4 middle blocks are replaced by their harmonizers (--select gradot ranks them by a GradOT-style measurement instead: adapter-gradient change vs LM-loss change when each block is replaced alone), and SRC keeps round((1-β)·min(d_in,d_out)) singular values of the attention projections of the raw middle blocks. --method uniform is Offsite-Tuning\'s uniform LayerDrop: keep --keep middle blocks at round(i(n-1)/(k-1)), or give --drop/--keep-layers explicitly; --distill trains the kept middle blocks on the owner\'s corpus first (LM loss + 30 x normalised hidden-state MSE; the tuning flags set its budget).')
    .addOption(new Option('--method <name>', 'emulator family').choices(['uniform', 'scaleot']).default('uniform'))
    .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
    .requiredOption('--out <dir>', 'where the emulator artifact goes')
    .option('--adapters <list>', 'adapter blocks: a sandwich (e.g. 0,1,10,11) or blocks at several depths (CRaSh-style, e.g. 0,4,7,11: the middle blocks between adapters are compressed)', intList)
    .option('--n-adapters <n>', 'N_a: number of adapter blocks, split evenly bottom/top (default 4)', positiveInt)
    .option('--drop <list>', 'middle blocks to drop, e.g. 3,5,7,9', intList)
    .option('--keep-layers <list>', 'middle blocks to keep', intList)
    .option('--keep <k>', 'keep k middle blocks at uniform positions (default: half)', nonNegativeInt)
    .option('--distill', 'distil the kept middle blocks on the owner corpus')
    .option('--distill-corpus <task>', 'owner corpus for --distill', 'sotu')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--overwrite', 'replace an existing output directory');
  return withGlobalOptions(withScaleotFlags(withTrainFlags(cmd))).action(async (flags: EmulateFlags) => {
    await runCommand<unknown>('emulate', flags, async (log) => {
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite });
      const { initBackend } = await import('@scaleot/backend');
      const { createUniformEmulator } = await import('@scaleot/offsite');
      await initBackend(flags.backend);
      const layout = await adapterOptions(flags.model, flags.adapters, flags.nAdapters);
      if (flags.method === 'scaleot') {
        const r = await buildScaleotFromFlags(flags.model, flags.out, flags, layout, flags.overwrite, flags.dataRoot);
        return {
          result: { outDir: r.outDir, manifest: r.manifest, plan: r.plan },
          human: `ScaleOT emulator (α=${flags.alpha}, β=${flags.beta}, selected by ${flags.select}) written to ${r.outDir}: raw ${r.plan.raw.join(',') || '-'}, replaced ${r.plan.replaced.join(',') || '-'}, dropped ${r.plan.dropped.join(',') || '-'}`,
        };
      }
      const selection: LayerSelection = { keep: flags.keep, keepLayers: flags.keepLayers, dropLayers: flags.drop };
      const r = await createUniformEmulator({
        modelDir: flags.model,
        outDir: flags.out,
        adapter: layout,
        selection: Object.fromEntries(Object.entries(selection).filter(([, v]) => v !== undefined)),
        distill: flags.distill ? { corpus: flags.distillCorpus, hyper: trainHyper(flags) } : undefined,
        dataRoot: flags.dataRoot,
        overwrite: flags.overwrite,
        logger: log,
      });
      return {
        result: { outDir: r.outDir, manifest: r.manifest, distillSteps: r.distill?.steps ?? 0 },
        human: `emulator written to ${r.outDir} (${r.manifest.layerMap.length} layer entries)`,
      };
    });
  });
}
