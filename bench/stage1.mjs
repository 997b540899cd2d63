// One ScaleOT stage-1 step as `scaleot stage1` runs it (runStage1: stage1Loop + LocalStage1Executor):
// harmonizer gradients on 16 × 256 under a sampled mask, the clipped AdamW update, and 3 candidate
// rollouts on a held-out batch; beside PyTorch doing the same step on the same machine in the same run.
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { benchModel, emitJson, fixturesDir, fmt, importPackage, log, median, modelOption, table } from './lib/common.mjs';
import { bestPyTorch, settingName } from './lib/peers.mjs';

export const description = 'scaleot stage1 step (harmonizer step + 3 rollouts, tiny or llama-24l, 16×256) vs PyTorch';

export const options = {
  ...modelOption,
  fixtures: { type: 'string', help: 'fixtures dir (default ../shared/fixtures from the repo root)' },
  steps: { type: 'number', default: 5, help: 'timed steps (median reported)' },
  warmup: { type: 'number', default: 1, help: 'untimed steps first' },
  batch: { type: 'number', default: 16, help: 'windows per step' },
  micro: { type: 'number', default: 4, help: 'windows per forward/backward' },
  seq: { type: 'number', default: 256, help: 'tokens per window' },
  candidates: { type: 'number', default: 3, help: 'rollouts per step' },
  'rl-batch': { type: 'number', default: 8, help: 'held-out windows per rollout' },
  torch: { type: 'boolean', default: true, help: 'run the PyTorch peer (--no-torch to skip)' },
  install: { type: 'boolean', default: true, help: 'apt-get install python3-torch + OpenBLAS when missing' },
};

export async function main(opts) {
  const fixtures = fixturesDir(opts.fixtures);
  const model = benchModel(opts.model, fixtures);
  const { modelDir } = model;
  const work = await mkdtemp(path.join(tmpdir(), 'scaleot-bench-stage1-'));
  const errors = {};
  try {
    const { initBackend } = await importPackage('@scaleot/backend', ['initBackend']);
    const { runStage1, corpusStreams } = await importPackage('@scaleot/scaleot', ['runStage1', 'corpusStreams']);
    await initBackend('wasm');
    const streams = await corpusStreams('sotu', path.join(fixtures, 'data'), modelDir);
    const times = [];
    try {
      await runStage1({
        modelDir, outDir: path.join(work, 'stage1'), streams, steps: opts.warmup + opts.steps, batchSize: opts.batch, microBatchSize: opts.micro, seqLen: opts.seq,
        candidates: opts.candidates, rlBatchSize: opts['rl-batch'], warmupSteps: 1, checkpointEvery: 1000,
        onStep: (e) => {
          times.push(e.seconds);
          log(`ours: stage-1 step ${e.step}: ${e.seconds.toFixed(3)} s, loss ${e.loss.toFixed(4)}, rollouts ${e.rollouts?.losses.map((l) => l.toFixed(3)).join(' ')}`);
        },
      });
    } catch (e) {
      errors.ours = e.message;
    }
    const oursTimes = times.slice(opts.warmup);
    let torch = null;
    if (opts.torch) {
      torch = await bestPyTorch('stage1', ['--model', modelDir, '--batch', String(opts.batch), '--micro', String(opts.micro), '--seq', String(opts.seq), '--steps', String(opts.steps), '--warmup', String(opts.warmup), '--candidates', String(opts.candidates), '--rl-batch', String(opts['rl-batch'])], { install: opts.install }).catch((e) => ({ best: null, runs: [], error: e.message }));
      if (!torch.best) errors.torch = torch.error;
    }
    const oursStep = oursTimes.length ? median(oursTimes) : null;
    const torchStep = torch?.best?.median_step_s ?? null;
    const ratio = oursStep && torchStep ? oursStep / torchStep : null;
    const rows = [['ours: scaleot stage1 (1 thread)', fmt(oursStep), oursTimes.map((x) => fmt(x, 2)).join(' '), fmt(ratio, 2)]];
    for (const run of torch?.runs ?? []) rows.push([`PyTorch: ${settingName(run)}${run === torch.best ? ' (best)' : ''}`, fmt(run.median_step_s), run.step_times_s.map((x) => fmt(x, 2)).join(' '), fmt(run.median_step_s / torchStep, 2)]);
    process.stdout.write(`stage-1 step: ${model.label}, N_a 4, harmonizer step on ${opts.batch} × ${opts.seq} (micro ${opts.micro}, align term on) + ${opts.candidates} rollouts on ${opts['rl-batch']} × ${opts.seq}; median of ${opts.steps} after ${opts.warmup} warmup; ${availableParallelism()} cores\n`);
    process.stdout.write(`${table(['run', 'step s (median)', 'steps s', 'ratio vs best PyTorch'], rows)}\n`);
    process.stdout.write(`ratio: ${fmt(ratio, 2)} (target ≤ 1.0: ${ratio === null ? 'n/a' : ratio <= 1 ? 'MET' : 'NOT MET'})\n`);
    for (const [k, v] of Object.entries(errors)) process.stdout.write(`${k}: ${v}\n`);
    emitJson(opts.json, {
      ours_step_s: oursStep,
      pytorch_step_s: torchStep,
      ratio,
      model: model.name,
      ours_step_times_s: oursTimes,
      pytorch: (torch?.runs ?? []).map((r) => ({ torch_threads: r.torchThreads, openblas_threads: r.blasThreads, median_step_s: r.median_step_s, step_times_s: r.step_times_s, version: r.torch_version })),
      pytorch_best: torch?.best ? settingName(torch.best) : null,
      errors,
    });
    return Object.keys(errors).length ? 1 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
