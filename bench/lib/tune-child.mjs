// Child process of bench/tune.mjs: one `scaleot tune` run (tuneAdapter, what the command calls) on an
// emulator, timing every optimizer step. Usage: node bench/lib/tune-child.mjs '<json options>'.
import { importPackage } from './common.mjs';

const o = JSON.parse(process.argv[2]);
const { initBackend } = await importPackage('@scaleot/backend', ['initBackend']);
const { tuneAdapter } = await importPackage('@scaleot/offsite', ['tuneAdapter']);
await initBackend('wasm');
const times = [];
const losses = [];
const r = await tuneAdapter({
  emulatorDir: o.emulatorDir,
  task: 'moby',
  dataRoot: o.dataRoot,
  outDir: o.outDir,
  overwrite: true,
  threads: o.threads,
  hyper: { steps: o.warmup + o.steps, batchSize: o.batch, microBatchSize: o.micro, seqLen: o.seq, warmupSteps: 1 },
  onStep: (info) => {
    times.push(info.seconds);
    losses.push(info.loss);
    process.stderr.write(`[tune] ${o.threads} thread(s): step ${info.step}/${o.warmup + o.steps}: ${info.seconds.toFixed(3)} s, loss ${info.loss.toFixed(4)}\n`);
  },
});
process.stdout.write(`${JSON.stringify({ threads: r.threads, step_times_s: times.slice(o.warmup), losses })}\n`);
