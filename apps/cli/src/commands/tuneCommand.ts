import { Command } from 'commander';
import { importOffsite, positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR } from '../paths.js';
import { loraSpec, trainHyper, withThreadsFlag, withTrainFlags, type TrainFlags } from '../trainFlags.js';
import { refuseExistingOutput } from '../outputGuard.js';

interface TuneFlags extends GlobalOptions, TrainFlags {
  emulator: string;
  task: string;
  out: string;
  dataRoot: string;
  checkpointDir?: string;
  checkpointEvery?: number;
  resume: boolean;
  overwrite?: boolean;
  threads?: number;
}

export function tuneCommand(): Command {
  const cmd = new Command('tune')
    .summary('tune the adapter blocks of an emulator on a task (data owner side)')
    .description('Trains only the adapter blocks (or LoRA factors inside them) against the emulator with AdamW, warmup + cosine schedule, gradient clipping and accumulation. With --checkpoint-dir the run can be stopped and resumed exactly.')
    .requiredOption('--emulator <dir>', 'emulator artifact directory')
    .option('--task <name|path>', 'built-in task (moby, spam) or a task spec file/dir', 'moby')
    .requiredOption('--out <dir>', 'where the tuned adapter artifact goes')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--checkpoint-dir <dir>', 'resumable training state (weights, optimizer, step, data position)')
    .option('--checkpoint-every <n>', 'save state every N steps (default 50)', positiveInt)
    .option('--no-resume', 'start over even if --checkpoint-dir holds state')
    .option('--overwrite', 'replace an existing output directory');
  return withGlobalOptions(withThreadsFlag(withTrainFlags(cmd))).action(async (flags: TuneFlags) => {
    await runCommand('tune', flags, async (log) => {
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite, resumable: flags.checkpointDir ? [flags.checkpointDir] : [] });
      const { initBackend } = await import('@scaleot/backend');
      const { tuneAdapter } = await importOffsite();
      await initBackend(flags.backend);
      const r = await tuneAdapter({
        emulatorDir: flags.emulator,
        task: flags.task,
        dataRoot: flags.dataRoot,
        outDir: flags.out,
        hyper: trainHyper(flags),
        lora: loraSpec(flags) ?? null,
        checkpointDir: flags.checkpointDir,
        checkpointEvery: flags.checkpointEvery,
        resume: flags.resume,
        overwrite: flags.overwrite,
        threads: flags.threads,
        logger: log,
      });
      const last = r.train.losses.at(-1);
      return {
        result: { outDir: r.outDir, completed: r.completed, steps: r.train.steps, finalLoss: last ?? null, hyper: r.hyper, threads: r.threads },
        human: `adapter tuned for ${r.train.steps} steps (final loss ${last?.toFixed(4) ?? 'n/a'}) -> ${r.outDir}`,
      };
    });
  });
}
