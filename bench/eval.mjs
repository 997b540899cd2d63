// Moby-Dick evaluation as `scaleot eval --task moby` runs it (evaluate: perplexity over non-overlapping
// blocks of n_positions + 1 tokens), tokens/s beside a PyTorch forward over the very same blocks.
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { benchModel, emitJson, fixturesDir, fmt, importPackage, log, median, modelOption, table } from './lib/common.mjs';
import { bestPyTorch, settingName } from './lib/peers.mjs';

export const description = 'scaleot eval --task moby tokens/s (tiny or llama-24l) vs a PyTorch forward over the same blocks';

export const options = {
  ...modelOption,
  fixtures: { type: 'string', help: 'fixtures dir (default ../shared/fixtures from the repo root)' },
  'max-blocks': { type: 'number', default: 48, help: 'evaluation blocks (the protocol has 244; a prefix keeps the bench short)' },
  batch: { type: 'number', default: 8, help: 'blocks per forward (the eval default)' },
  torch: { type: 'boolean', default: true, help: 'run the PyTorch peer (--no-torch to skip)' },
  install: { type: 'boolean', default: true, help: 'apt-get install python3-torch + OpenBLAS when missing' },
};

export async function main(opts) {
  const fixtures = fixturesDir(opts.fixtures);
  const model = benchModel(opts.model, fixtures);
  const { modelDir } = model;
  const dataRoot = path.join(fixtures, 'data');
  const work = await mkdtemp(path.join(tmpdir(), 'scaleot-bench-eval-'));
  const errors = {};
  try {
    const { initBackend } = await importPackage('@scaleot/backend', ['initBackend']);
    const { evaluate } = await importPackage('@scaleot/offsite', ['evaluate']);
    const { builtinTask, lmDocuments, lmEvalBlocks, lmStream, taskRows } = await importPackage('@scaleot/data', ['builtinTask', 'lmDocuments', 'lmEvalBlocks', 'lmStream', 'taskRows']);
    const { Tokenizer } = await importPackage('@scaleot/tokenizer', ['Tokenizer']);
    await initBackend('wasm');
    // The blocks the protocol scores, written for the peer.
    const task = await builtinTask('moby', dataRoot);
    const tokenizer = await Tokenizer.fromDir(modelDir);
    const ctx = 256;
    const blocks = lmEvalBlocks(lmStream(lmDocuments(taskRows(task, 'test'), task.spec), tokenizer), ctx).slice(0, opts['max-blocks']);
    const flat = new Int32Array(blocks.length * (ctx + 1));
    blocks.forEach((b, i) => flat.set(b, i * (ctx + 1)));
    const tokensFile = path.join(work, 'blocks.i32');
    await writeFile(tokensFile, Buffer.from(flat.buffer));

    // Ours: the time between scored batches (the first, with the load, untimed).
    const stamps = [];
    let ours = null;
    try {
      const started = performance.now();
      ours = await evaluate({ modelDir, task: 'moby', dataRoot, maxBlocks: opts['max-blocks'], batchSize: opts.batch, onProgress: () => stamps.push(performance.now()) });
      stamps.unshift(started);
    } catch (e) {
      errors.ours = e.message;
    }
    const batchTimes = stamps.slice(1).map((t, i) => (t - stamps[i]) / 1000).slice(1, Math.floor(blocks.length / opts.batch));
    const oursStep = batchTimes.length ? median(batchTimes) : null;
    const oursTps = oursStep ? (opts.batch * ctx) / oursStep : null;
    log(`ours: ${ours?.count} tokens, perplexity ${ours?.value}, median batch ${fmt(oursStep)} s`);
    let torch = null;
    if (opts.torch) {
      torch = await bestPyTorch('eval', ['--model', modelDir, '--tokens', tokensFile, '--batch', String(opts.batch), '--warmup', '1'], { install: opts.install }).catch((e) => ({ best: null, runs: [], error: e.message }));
      if (!torch.best) errors.torch = torch.error;
    }
    const torchStep = torch?.best?.median_step_s ?? null;
    const ratio = oursStep && torchStep ? oursStep / torchStep : null;
    const rows = [['ours: scaleot eval (wasm, 1 thread)', fmt(oursStep), fmt(oursTps, 0), fmt(ours?.value, 4), fmt(ratio, 2)]];
    for (const run of torch?.runs ?? []) rows.push([`PyTorch: ${settingName(run)}${run === torch.best ? ' (best)' : ''}`, fmt(run.median_step_s), fmt(run.tokens_per_s, 0), fmt(run.perplexity, 4), fmt(run.median_step_s / torchStep, 2)]);
    process.stdout.write(`eval: ${model.label}, Moby-Dick test stream, ${blocks.length} blocks of ${ctx + 1} tokens, batches of ${opts.batch}; median per batch (first untimed); ${availableParallelism()} cores\n`);
    process.stdout.write(`${table(['run', 'batch s (median)', 'tokens/s', 'perplexity', 'ratio vs best PyTorch'], rows)}\n`);
    process.stdout.write(`ratio (time per batch, ours / PyTorch): ${fmt(ratio, 2)} (target: tokens/s ≥ PyTorch's, i.e. ratio ≤ 1: ${ratio === null ? 'n/a' : ratio <= 1 ? 'MET' : 'NOT MET'})\n`);
    for (const [k, v] of Object.entries(errors)) process.stdout.write(`${k}: ${v}\n`);
    emitJson(opts.json, {
      ours_step_s: oursStep,
      pytorch_step_s: torchStep,
      ratio,
      model: model.name,
      ours_tokens_per_s: oursTps,
      pytorch_tokens_per_s: torch?.best?.tokens_per_s ?? null,
      ours_perplexity: ours?.value ?? null,
      pytorch_perplexity: torch?.best?.perplexity ?? null,
      pytorch_best: torch?.best ? settingName(torch.best) : null,
      blocks: blocks.length,
      errors,
    });
    return Object.keys(errors).length ? 1 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
