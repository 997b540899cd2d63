import { Command } from 'commander';
import { resolve } from 'node:path';
import { positiveInt, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { SHIPPED_DATA_DIR, SHIPPED_MODEL_DIR } from '../paths.js';
import { progressBar } from '../progressBar.js';

interface DemoFlags extends GlobalOptions {
  redis: string;
  inProcess?: boolean;
  out: string;
  model: string;
  dataRoot: string;
  task: string;
  workers: number;
  fullFineTune: boolean;
}

export function demoCommand(): Command {
  return withGlobalOptions(
    new Command('demo')
      .summary('the whole pipeline on the bundled tiny model (the main job)')
      .description('Stage 1 (Dynamic LayerReplace: importance scores + harmonizers) on the owner\'s SOTU corpus, two emulators of different privacy, a data owner tuning adapters on Moby-Dick through the API, plug-in, the five-number report and the plots. With Redis reachable it spawns a local coordinator and worker processes; otherwise it runs the same job handlers in-process and says so.')
      .option('--redis <url>', 'Redis of the local cluster', process.env.SCALEOT_REDIS_URL ?? 'redis://127.0.0.1:6379')
      .option('--in-process', 'run the job handlers in this process even if Redis answers')
      .option('--out <dir>', 'where artifacts, reports and plots go', 'runs/demo')
      .option('--model <dir>', 'full HF model directory', SHIPPED_MODEL_DIR)
      .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
      .option('--task <name>', 'the data owner\'s task', 'moby')
      .option('--workers <n>', 'worker processes in cluster mode', positiveInt, 2)
      .option('--no-full-fine-tune', 'skip the full fine-tuning upper bound'),
  ).action(async (flags: DemoFlags) => {
    await runCommand('demo', flags, async (log) => {
      const { initBackend } = await import('@scaleot/backend');
      const { runPipeline } = await import('@scaleot/cluster');
      // The in-process mode computes here (cluster mode in the workers, which pick their own backend).
      await initBackend(flags.backend);
      const result = await runPipeline({
        outDir: resolve(flags.out),
        redis: flags.inProcess ? false : flags.redis,
        modelDir: flags.model,
        dataRoot: flags.dataRoot,
        task: flags.task,
        workers: flags.workers,
        fullFineTune: flags.fullFineTune,
        // Status lines reach the person once, through the logger (human lines or JSON, per --log-format).
        logger: log,
        onProgress: (p) => progressBar(p),
      });
      const human = [
        `mode: ${result.mode}${result.reason ? ` (${result.reason})` : ''}, ${result.seconds.toFixed(0)} s`,
        ...result.reports.map((r) => `\n### (N_a=${r.preset.nAdapter}, α=${r.preset.alpha}, β=${r.preset.beta})\n${r.markdown}`),
        `\nreport: ${result.htmlFile} (and ${result.reportFile})`,
        `plots: ${result.plots.join(', ')}`,
      ].join('\n');
      return { result, human };
    });
  });
}
