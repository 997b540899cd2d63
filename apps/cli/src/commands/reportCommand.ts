import { atomicWriteFile, atomicWriteJson } from '@scaleot/core';
import type { LayerSelection } from '@scaleot/offsite';
import { Command, Option } from 'commander';
import { join, resolve } from 'node:path';
import { adapterOptions } from '../adapterFlags.js';
import { importOffsite, intList, nonNegativeInt, positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';
import { buildScaleotFromFlags, withScaleotFlags, type ScaleotFlags } from '../scaleotFlags.js';
import { loraSpec, trainHyper, withTrainFlags, type TrainFlags } from '../trainFlags.js';
import { refuseExistingOutput } from '../outputGuard.js';
import { evalSettings, withEvalFlags, type EvalFlags } from '../evalFlags.js';

interface ReportFlags extends GlobalOptions, TrainFlags, ScaleotFlags, EvalFlags {
  method: 'uniform' | 'scaleot';
  model: string;
  task: string;
  out: string;
  dataRoot: string;
  emulator?: string;
  adapters?: number[];
  nAdapters?: number;
  drop?: number[];
  keepLayers?: number[];
  keep?: number;
  fullFineTune: boolean;
  audit?: boolean;
  overwrite?: boolean;
}

export function reportCommand(): Command {
  const cmd = new Command('report')
    .summary('the five offsite-tuning numbers for one emulator on one task')
    .description('Runs full zero-shot, emulator zero-shot, emulator fine-tuned, plug-in and full fine-tuning with one tuning budget, writes report.json and report.md to --out, and prints the table (or, with --json, {"full_zero_shot","emulator_zero_shot","emulator_fine_tuned","plug_in","full_fine_tuned","attacker","attackers",...} as the last line; "attacker" is the --audit\'s best attacker, null without --audit).')
    .addOption(new Option('--method <name>', 'emulator family').choices(['uniform', 'scaleot']).default('uniform'))
    .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
    .option('--task <name|path>', 'built-in task (moby, spam) or a task spec file/dir', 'moby')
    .option('--out <dir>', 'work directory for artifacts and the report', 'runs/report')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--emulator <dir>', 'report on this existing emulator instead of cutting one')
    .option('--adapters <list>', 'adapter blocks: a sandwich (e.g. 0,1,10,11) or blocks at several depths (CRaSh-style, e.g. 0,4,7,11: the middle blocks between adapters are compressed)', intList)
    .option('--n-adapters <n>', 'N_a (default 4)', positiveInt)
    .option('--drop <list>', 'uniform: middle blocks to drop, e.g. 3,5,7,9', intList)
    .option('--keep-layers <list>', 'uniform: middle blocks to keep', intList)
    .option('--keep <k>', 'uniform: keep k middle blocks at uniform positions', nonNegativeInt)
    .option('--no-full-fine-tune', 'skip the full fine-tuning upper bound (reported as null)')
    .option('--audit', 'also run the emulator privacy audit (`scaleot audit`: both attackers, same budget and evaluation) and report its best attacker as "attacker"')
    .option('--overwrite', 'replace artifacts from an earlier run in --out');
  return withGlobalOptions(withEvalFlags(withScaleotFlags(withTrainFlags(cmd)))).action(async (flags: ReportFlags) => {
    await runCommand('report', flags, async (log) => {
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite });
      const { initBackend } = await import('@scaleot/backend');
      const { fiveNumberReport, renderReportMarkdown } = await importOffsite();
      await initBackend(flags.backend);
      const selection: LayerSelection = Object.fromEntries(
        Object.entries({ keep: flags.keep, keepLayers: flags.keepLayers, dropLayers: flags.drop }).filter(([, v]) => v !== undefined),
      );
      const workDir = resolve(flags.out);
      const layout = await adapterOptions(flags.model, flags.adapters, flags.nAdapters);
      let emulatorDir = flags.emulator;
      if (flags.method === 'scaleot' && !emulatorDir) {
        emulatorDir = join(workDir, 'emulator');
        await buildScaleotFromFlags(flags.model, emulatorDir, flags, layout, true, flags.dataRoot);
      }
      const report = await fiveNumberReport({
        modelDir: flags.model,
        task: flags.task,
        dataRoot: flags.dataRoot,
        workDir,
        emulatorDir,
        adapter: layout,
        selection,
        hyper: trainHyper(flags),
        lora: loraSpec(flags) ?? null,
        eval: evalSettings(flags),
        fullFineTune: flags.fullFineTune,
        audit: flags.audit ?? false,
        overwrite: flags.overwrite,
        logger: log,
        onPhase: (phase, state, seconds) => log.info({ phase, state, seconds }, `${phase} ${state}`),
      });
      const result = { method: flags.method, ...(flags.method === 'scaleot' ? { alpha: flags.alpha, beta: flags.beta, mode: flags.mode, select: flags.select, src_targets: flags.srcTargets, stage1: flags.stage1 } : {}), ...report };
      const markdown = renderReportMarkdown(report);
      await atomicWriteJson(join(workDir, 'report.json'), result);
      await atomicWriteFile(join(workDir, 'report.md'), `${markdown}\n`);
      return { result, human: markdown };
    });
  });
}
