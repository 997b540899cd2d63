import { atomicWriteFile, atomicWriteJson } from '@scaleot/core';
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
  stage1: string;
  task: string;
  out: string;
  overwrite?: boolean;
  dataRoot: string;
  alphas: number[];
  betas: number[];
  baselines: boolean;
  audit?: boolean;
}

export function frontierCommand(): Command {
  const cmd = new Command('frontier')
    .summary('the privacy-utility frontier: five numbers for a grid of (α, β) emulators')
    .description('Builds one ScaleOT emulator per (α, β) from one stage-1 run, tunes adapters on each, and reports emulator fine-tuned vs plug-in quality (one point per emulator, uniform LayerDrop and the adapter ceiling marked; with --audit, each emulator\'s best attacker too). Writes frontier.json, frontier.svg, importance.svg and frontier.html to --out.')
    .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
    .requiredOption('--stage1 <dir>', 'stage-1 artifacts of that model')
    .option('--task <name|path>', 'built-in task (moby, spam) or a task spec file/dir', 'moby')
    .option('--out <dir>', 'work directory', 'runs/frontier')
    .option('--overwrite', 'reuse an existing work directory, replacing its artifacts')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--alphas <list>', 'α values in [0, 1)', fractionList, [0.25, 0.5, 0.75])
    .option('--betas <list>', 'β values in [0, 1)', fractionList, [0, 0.5])
    .option('--no-baselines', 'skip uniform LayerDrop and the adapter ceiling')
    .option('--audit', 'run the emulator privacy audit (`scaleot audit`, same budget) on every point and mark its best attacker on the chart');
  return withGlobalOptions(withEvalFlags(withTrainFlags(cmd))).action(async (flags: FrontierFlags) => {
    await runCommand('frontier', flags, async (log) => {
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite });
      const { initBackend } = await import('@scaleot/backend');
      const { runFrontier, layerImportance } = await import('@scaleot/scaleot');
      const { frontierChart, layerImportanceChart, htmlReport } = await import('@scaleot/plots');
      await initBackend(flags.backend);
      const workDir = resolve(flags.out);
      const result = await runFrontier({
        modelDir: flags.model,
        stage1Dir: flags.stage1,
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
      const metric = result.points[0]?.metric ?? 'metric';
      const frontier = await frontierChart(result.points, { title: `Privacy-utility frontier (${flags.task})`, metric, higherIsBetter: result.points[0]?.higherIsBetter });
      const importance = await layerImportanceChart((await layerImportance(flags.stage1)).blocks);
      const audited = result.points.some((p) => p.attacker !== null);
      const table = [
        `| emulator | blocks | full zero-shot | emulator zero-shot | emulator fine-tuned | plug-in |${audited ? ' attacker (best) |' : ''}`,
        `|---|---:|---:|---:|---:|---:|${audited ? '---:|' : ''}`,
        ...result.points.map(
          (p) => `| ${p.label} | ${p.blocks} | ${p.full_zero_shot.toFixed(3)} | ${p.emulator_zero_shot.toFixed(3)} | ${p.emulator_fine_tuned.toFixed(3)} | ${p.plug_in.toFixed(3)} |${audited ? ` ${p.attacker?.toFixed(3) ?? '—'} |` : ''}`,
        ),
      ].join('\n');
      await atomicWriteJson(join(workDir, 'frontier.json'), result);
      await atomicWriteFile(join(workDir, 'frontier.svg'), frontier);
      await atomicWriteFile(join(workDir, 'importance.svg'), importance);
      await atomicWriteFile(
        join(workDir, 'frontier.html'),
        htmlReport(`ScaleOT privacy-utility frontier: ${flags.task}`, [
          {
            heading: 'Emulator fine-tuned vs plug-in',
            text: `One point per emulator; squares and diamonds are baselines (uniform LayerDrop, the adapter ceiling). The dashed diagonal is no privacy: there the data owner gets from the emulator alone what the plug-in gives. A larger gap between plug-in and emulator fine-tuned means more model privacy at the same utility.${audited ? " Hollow triangles: the privacy audit's best attacker (every emulator weight trained on the data owner's data, or distilled toward the plug-in's outputs, at the same budget), joined to its emulator's point; the privacy that survives an attacker is its distance from the diagonal." : ''}`,
            svg: frontier,
          },
          { heading: 'Five numbers per emulator', table },
          { heading: 'Learned layer importance', svg: importance },
        ]),
      );
      return { result: { ...result, outDir: workDir }, human: `${table}\n\nplots: ${join(workDir, 'frontier.html')}` };
    });
  });
}
