import { Command } from 'commander';
import { importOffsite, positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';

interface EvalFlags extends GlobalOptions {
  model?: string;
  emulator?: string;
  adapter?: string;
  task: string;
  dataRoot: string;
  batchSize: number;
  maxBlocks?: number;
  maxExamples?: number;
}

export function evalCommand(): Command {
  return withGlobalOptions(
    new Command('eval')
      .summary('evaluate a model or emulator on a task (perplexity or accuracy)')
      .description('Evaluates with the fixture protocols: LM tasks by perplexity over non-overlapping blocks of n_positions+1 tokens, classification tasks by multiple-choice log-likelihood accuracy. With --json the last stdout line is {"task","metric","value",...}.')
      .option('--model <dir>', 'HF model directory (config.json + safetensors)')
      .option('--emulator <dir>', 'emulator artifact directory (instead of --model)')
      .option('--adapter <dir>', 'plug these tuned adapter blocks in first')
      .option('--task <name|path>', 'built-in task (moby, spam, sotu) or a task spec file/dir', 'moby')
      .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
      .option('--batch-size <n>', 'sequences per forward pass', positiveInt, 8)
      .option('--max-blocks <n>', 'LM: score only the first N blocks (default: all, the protocol)', positiveInt)
      .option('--max-examples <n>', 'classification: score only the first N test rows (default: all)', positiveInt),
  ).action(async (flags: EvalFlags) => {
    await runCommand('eval', flags, async (log) => {
      const { initBackend } = await import('@scaleot/backend');
      const { evaluate } = await importOffsite();
      await initBackend(flags.backend);
      const modelDir = flags.emulator ? undefined : (flags.model ?? SHIPPED_MODEL_DIR);
      const r = await evaluate({
        modelDir,
        emulatorDir: flags.emulator,
        adapterDir: flags.adapter,
        task: flags.task,
        dataRoot: flags.dataRoot,
        batchSize: flags.batchSize,
        maxBlocks: flags.maxBlocks,
        maxExamples: flags.maxExamples,
        logger: log,
      });
      const shown = r.metric === 'perplexity' ? r.value.toFixed(3) : `${(100 * r.value).toFixed(2)}%`;
      return {
        result: { ...r, model: modelDir ?? flags.emulator },
        human: `${r.task}: ${r.metric} ${shown} over ${r.count} ${r.metric === 'perplexity' ? 'tokens' : 'examples'} (${r.seconds.toFixed(1)} s)`,
      };
    });
  });
}
