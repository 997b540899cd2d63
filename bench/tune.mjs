// `scaleot tune` (the data owner's adapter tuning, what the command runs: tuneAdapter) on the tiny model's
// uniform LayerDrop emulator, beside PyTorch doing the same step on the same machine in the same run.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { benchModel, emitJson, fixturesDir, fmt, importPackage, log, median, modelOption, repoRoot, table } from './lib/common.mjs';
import { bestPyTorch, settingName, vmHwm } from './lib/peers.mjs';

export const description = 'scaleot tune step (uniform emulator: tiny drop 3,5,7,9 / llama-24l 10 of 20 middle kept; 16×256) at all threads and 1 vs PyTorch; peak RSS';

export const options = {
  ...modelOption,
  fixtures: { type: 'string', help: 'fixtures dir (default ../shared/fixtures from the repo root)' },
  steps: { type: 'number', default: 5, help: 'timed steps (median reported)' },
  warmup: { type: 'number', default: 1, help: 'untimed steps first' },
  batch: { type: 'number', default: 16, help: 'rows per step' },
  micro: { type: 'number', default: 4, help: 'rows per forward/backward' },
  seq: { type: 'number', default: 256, help: 'tokens per row' },
  threads: { type: 'number', help: 'threads of the main run (default: what scaleot tune uses: available cores, capped by cgroup and SCALEOT_THREADS)' },
  'one-thread': { type: 'boolean', default: true, help: 'also run with --threads 1 (--no-one-thread to skip)' },
  torch: { type: 'boolean', default: true, help: 'run the PyTorch peer (--no-torch to skip)' },
  install: { type: 'boolean', default: true, help: 'apt-get install python3-torch + OpenBLAS when missing' },
};

function runChild(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bench', 'lib', 'tune-child.mjs'), JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SCALEOT_LOG_LEVEL: 'warn' } });
    let stdout = '';
    let peak = 0;
    const timer = setInterval(() => void vmHwm(child.pid).then((b) => (peak = Math.max(peak, b ?? 0))), 100);
    child.stdout.on('data', (c) => (stdout += c));
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`tune-child exited with ${code}`));
      resolve({ ...JSON.parse(stdout.trim().split('\n').pop()), peak_rss_bytes: peak });
    });
  });
}

export async function main(opts) {
  const fixtures = fixturesDir(opts.fixtures);
  const model = benchModel(opts.model, fixtures);
  const { modelDir } = model;
  const dataRoot = path.join(fixtures, 'data');
  const work = await mkdtemp(path.join(tmpdir(), 'scaleot-bench-tune-'));
  const errors = {};
  try {
    const { initBackend } = await importPackage('@scaleot/backend', ['initBackend']);
    const { createUniformEmulator } = await importPackage('@scaleot/offsite', ['createUniformEmulator']);
    const { computeThreads } = await importPackage('@scaleot/model', ['computeThreads']);
    await initBackend('wasm');
    const emulatorDir = path.join(work, 'emulator');
    log(`building the uniform emulator (drop ${model.drop})`);
    await createUniformEmulator({ modelDir, outDir: emulatorDir, selection: { dropLayers: model.drop } });
    const threads = opts.threads ?? computeThreads();
    const shape = { steps: opts.steps, warmup: opts.warmup, batch: opts.batch, micro: opts.micro, seq: opts.seq };
    const ours = [];
    for (const t of opts['one-thread'] && threads > 1 ? [threads, 1] : [threads]) {
      log(`ours: scaleot tune loop, ${t} thread(s)`);
      try {
        ours.push(await runChild({ emulatorDir, dataRoot, outDir: path.join(work, `adapter-${t}`), threads: t, ...shape }));
      } catch (e) {
        errors[`ours_${t}`] = e.message;
      }
    }
    let torch = null;
    if (opts.torch) {
      torch = await bestPyTorch('tune', ['--model', modelDir, '--batch', String(opts.batch), '--micro', String(opts.micro), '--seq', String(opts.seq), '--steps', String(opts.steps), '--warmup', String(opts.warmup), '--drop', model.drop.join(','), '--adapters', model.adapters.join(',')], { install: opts.install }).catch((e) => ({ best: null, runs: [], error: e.message }));
      if (!torch.best) errors.torch = torch.error;
    }
    const main = ours.find((r) => r.threads === threads) ?? null;
    const oursStep = main ? median(main.step_times_s) : null;
    const torchStep = torch?.best?.median_step_s ?? null;
    const ratio = oursStep && torchStep ? oursStep / torchStep : null;
    const rows = ours.map((r) => [`ours: scaleot tune, ${r.threads} thread${r.threads > 1 ? 's' : ''}`, fmt(median(r.step_times_s)), r.step_times_s.map((x) => fmt(x, 2)).join(' '), fmt(r.peak_rss_bytes / 2 ** 20, 0), torchStep ? fmt(median(r.step_times_s) / torchStep, 2) : 'n/a']);
    for (const run of torch?.runs ?? []) rows.push([`PyTorch: ${settingName(run)}${run === torch.best ? ' (best)' : ''}`, fmt(run.median_step_s), run.step_times_s.map((x) => fmt(x, 2)).join(' '), '', fmt(run.median_step_s / torchStep, 2)]);
    process.stdout.write(`tune step: ${model.label} uniform emulator (drop ${model.drop}; adapters ${model.adapters}), ${opts.batch} × ${opts.seq} tokens in micro-batches of ${opts.micro}, AdamW + clip; median of ${opts.steps} after ${opts.warmup} warmup; ${availableParallelism()} cores\n`);
    process.stdout.write(`${table(['run', 'step s (median)', 'steps s', 'peak RSS MiB', 'ratio vs best PyTorch'], rows)}\n`);
    process.stdout.write(`ratio (ours at ${threads} threads / PyTorch at its best): ${fmt(ratio, 2)} (target ≤ 1.0: ${ratio === null ? 'n/a' : ratio <= 1 ? 'MET' : 'NOT MET'})\n`);
    for (const [k, v] of Object.entries(errors)) process.stdout.write(`${k}: ${v}\n`);
    emitJson(opts.json, {
      ours_step_s: oursStep,
      pytorch_step_s: torchStep,
      ratio,
      threads,
      model: model.name,
      ours: ours.map((r) => ({ threads: r.threads, median_step_s: median(r.step_times_s), step_times_s: r.step_times_s, peak_rss_bytes: r.peak_rss_bytes })),
      pytorch: (torch?.runs ?? []).map((r) => ({ torch_threads: r.torchThreads, openblas_threads: r.blasThreads, median_step_s: r.median_step_s, step_times_s: r.step_times_s, version: r.torch_version })),
      pytorch_best: torch?.best ? settingName(torch.best) : null,
      ...shape,
      errors,
    });
    return Object.keys(errors).length ? 1 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
