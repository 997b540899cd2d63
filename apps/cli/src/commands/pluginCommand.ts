import { Command } from 'commander';
import { runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_MODEL_DIR } from '../paths.js';

interface PluginFlags extends GlobalOptions {
  model: string;
  adapter: string;
  out: string;
  allowSourceMismatch?: boolean;
  overwrite?: boolean;
}

export function pluginCommand(): Command {
  return withGlobalOptions(
    new Command('plugin')
      .summary('plug a tuned adapter into the full model and write a full HF checkpoint')
      .description('Model owner side. The output has the original tensor names, shapes and dtypes; every non-adapter tensor is byte-identical to the source.')
      .option('--model <dir>', 'the full HF model the adapter\'s emulator was cut from', SHIPPED_MODEL_DIR)
      .requiredOption('--adapter <dir>', 'tuned adapter artifact directory')
      .requiredOption('--out <dir>', 'where the plugged checkpoint goes')
      .option('--allow-source-mismatch', 'accept an adapter cut from a differently saved copy of the model')
      .option('--overwrite', 'replace an existing output directory'),
  ).action(async (flags: PluginFlags) => {
    await runCommand('plugin', flags, async () => {
      const { plugIn } = await import('@scaleot/offsite');
      const r = await plugIn({ modelDir: flags.model, adapterDir: flags.adapter, outDir: flags.out, allowSourceMismatch: flags.allowSourceMismatch, overwrite: flags.overwrite });
      return { result: r, human: `plugged ${r.replaced.length} adapter tensors into ${r.outDir}` };
    });
  });
}
