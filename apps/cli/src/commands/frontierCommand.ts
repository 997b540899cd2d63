import { atomicWriteFile, atomicWriteJson, ScaleotError } from '@scaleot/core';
import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { fractionList } from '../scaleotFlags.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';
import { trainHyper, withTrainFlags, type TrainFlags } from '../trainFlags.js';
import { refuseExistingOutput } from '../outputGuard.js';
import { evalSettings, withEvalFlags, type EvalFlags } from '../evalFlags.js';

interface FrontierFlags extends GlobalOptions, TrainFlags, EvalFlags {
  model: string;
  stage1?: string;
  from?: string[];
  task: string;
  out: string;
  overwrite?: boolean;
  dataRoot: string;
  alphas: number[];
  betas: number[];
  baselines: boolean;
  audit?: boolean;
}

const pathList = (value: string): string[] => value.split(',').map((s) => s.trim()).filter(Boolean);

export function frontierCommand(): Command {
  const cmd = new Command('frontier')
    .summary('the privacy-utility frontier: five numbers for a grid of (α, β) emulators')
    .description(
      'Builds one ScaleOT emulator per (α, β) from one stage-1 run, tunes adapters on each, and reports emulator fine-tuned vs plug-in quality (one point per emulator, uniform LayerDrop and the adapter ceiling marked; with --audit, each emulator\'s best attacker too). Writes frontier.json, frontier.svg, importance.svg and frontier.html to --out. ' +
        'With --from it runs nothing: it charts reports already written (scaleot report, the demo, a coordinator request, an earlier frontier; an audit.json of scaleot audit marks the best attacker of the report whose emulator it audited), e.g. scaleot frontier --from runs/a/report.json,runs/b --out runs/compare.',
    )
    .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
    .option('--stage1 <dir>', 'stage-1 artifacts of that model (required unless --from; with --from it adds the layer-importance chart)')
    .option('--from <list>', "chart existing reports instead of running: comma-separated report.json / frontier.json / audit.json files, or directories holding them (searched recursively); every report of one task and metric", pathList)
    .option('--task <name|path>', 'built-in task (moby, spam) or a task spec file/dir', 'moby')
    .option('--out <dir>', 'work directory', 'runs/frontier')
    .option('--overwrite', 'reuse an existing work directory, replacing its artifacts')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--alphas <list>', 'α values in [0, 1)', fractionList, [0.25, 0.5, 0.75])
    .option('--betas <list>', 'β values in [0, 1)', fractionList, [0, 0.5])
    .option('--no-baselines', 'skip uniform LayerDrop and the adapter ceiling')
    .option('--audit', 'run the emulator privacy audit (`scaleot audit`, same budget) on every point and mark its best attacker on the chart');
  return withGlobalOptions(withEvalFlags(withTrainFlags(cmd))).action(async (flags: FrontierFlags, command: Command) => {
    await runCommand('frontier', flags, async (log) => {
      if (!flags.from && !flags.stage1) throw new ScaleotError('BAD_OPTION', 'give --stage1 DIR to run a frontier, or --from REPORTS to chart existing reports', { where: '--stage1' });
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite });
      const { runFrontier, layerImportance, frontierFromReports } = await import('@scaleot/scaleot');
      const { frontierReport, layerImportanceChart } = await import('@scaleot/plots');
      const workDir = resolve(flags.out);
      let result: Awaited<ReturnType<typeof runFrontier>>;
      let sources: string[] | undefined;
      let task = flags.task;
      if (flags.from) {
        const read = await frontierFromReports(flags.from);
        // The reports name their task; --task only labels reports that do not (frontier.json).
        task = read.task ?? (command.getOptionValueSource('task') === 'cli' ? flags.task : 'task not named in the reports');
        result = read;
        sources = read.sources;
        log.info({ sources: read.sources.length, points: read.points.length, task }, 'frontier from existing reports');
      } else {
        const { initBackend } = await import('@scaleot/backend');
        await initBackend(flags.backend);
        result = await runFrontier({
          modelDir: flags.model,
          stage1Dir: flags.stage1!,
          workDir,
          task: flags.task,
          dataRoot: flags.dataRoot,
          alphas: flags.alphas,
          betas: flags.betas,
          baselines: flags.baselines,
          hyper: trainHyper(flags),
          eval: evalSettings(flags),
          audit: flags.audit ?? false,
          logger: log,
          onPoint: (p) => log.info({ point: p.label, emulator_fine_tuned: p.emulator_fine_tuned, plug_in: p.plug_in, attacker: p.attacker }, `frontier point ${p.label}`),
        });
      }
      const importanceSvg = flags.stage1 ? await layerImportanceChart((await layerImportance(flags.stage1)).blocks) : undefined;
      const page = await frontierReport(result.points, {
        task,
        metric: result.points[0]?.metric ?? 'metric',
        higherIsBetter: result.points[0]?.higherIsBetter,
        importanceSvg,
        sources,
      });
      await atomicWriteJson(join(workDir, 'frontier.json'), result);
      await atomicWriteFile(join(workDir, 'frontier.svg'), page.svg);
      if (importanceSvg) await atomicWriteFile(join(workDir, 'importance.svg'), importanceSvg);
      await atomicWriteFile(join(workDir, 'frontier.html'), page.html);
      return { result: { ...result, outDir: workDir }, human: `${page.table}\n\nplots: ${join(workDir, 'frontier.html')}` };
    });
  });
}
