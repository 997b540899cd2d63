// One GPT-2 training step, ours vs PyTorch on the same machine, plus checkpoint load speed and the
// peak memory of loading. See docs/benchmarks in the issue "Foundation" (done-when bullet).
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import {
  emitJson, fixturesDir, fmt, importPackage, log, median, randomTokenBatch, repoRoot, table,
} from './lib/common.mjs';
import { ensurePyTorch, runPyTorchStep } from './lib/pytorch.mjs';
import { runOurSteps } from './lib/ours.mjs';

export const description =
  'GPT-2 tiny train step (batch 8×256) ours wasm 1/2 threads vs PyTorch; safetensors GB/s; peak RSS per param byte';

export const options = {
  fixtures: { type: 'string', help: 'fixtures dir (default ../shared/fixtures from the repo root)' },
  steps: { type: 'number', default: 5, help: 'timed steps per configuration (median reported)' },
  warmup: { type: 'number', default: 2, help: 'untimed steps before them' },
  batch: { type: 'number', default: 8, help: 'sequences per step' },
  seq: { type: 'number', default: 256, help: 'tokens per sequence' },
  seed: { type: 'number', default: 1234, help: 'seed of the random token batch (same on both sides)' },
  torch: { type: 'boolean', default: true, help: 'run the PyTorch peer (--no-torch to skip)' },
  install: { type: 'boolean', default: true, help: 'apt-get install python3-torch + OpenBLAS when missing' },
  ours: { type: 'boolean', default: true, help: 'run our trainers (--no-ours to skip)' },
  'two-threads': { type: 'boolean', default: true, help: 'also time DataParallelTrainer on 2 worker threads' },
  'load-repeats': { type: 'number', default: 5, help: 'warm checkpoint reads (median reported)' },
};

const LOSS_TOLERANCE = 1e-3;
const STEP_RATIO_TARGET = 1.5;
const RSS_TARGET = 1.3;
const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Reads every tensor once through Checkpoint; returns seconds, stored and float32 bytes. */
async function readAll(Checkpoint, dir) {
  const started = performance.now();
  const checkpoint = await Checkpoint.open(dir);
  let storedBytes = 0;
  let floatBytes = 0;
  try {
    for (const name of await checkpoint.names()) {
      const info = await checkpoint.info(name);
      const values = await checkpoint.readFloat32(name);
      floatBytes += values.byteLength;
      storedBytes += info.dataOffsets ? info.dataOffsets[1] - info.dataOffsets[0] : info.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[info.dtype] ?? 4);
    }
  } finally {
    await checkpoint.close();
  }
  return { seconds: (performance.now() - started) / 1000, storedBytes, floatBytes };
}

async function benchLoadSpeed(models, repeats) {
  const { Checkpoint } = await importPackage('@scaleot/checkpoint', ['Checkpoint']);
  const rows = [];
  for (const [label, dir] of models) {
    const cold = await readAll(Checkpoint, dir);
    const warm = [];
    for (let i = 0; i < repeats; i++) warm.push((await readAll(Checkpoint, dir)).seconds);
    const warmS = median(warm);
    rows.push({
      model: label,
      stored_bytes: cold.storedBytes,
      float32_bytes: cold.floatBytes,
      cold_s: cold.seconds,
      warm_s: warmS,
      cold_gb_per_s: cold.storedBytes / cold.seconds / 1e9,
      warm_gb_per_s: cold.storedBytes / warmS / 1e9,
      warm_float32_gb_per_s: cold.floatBytes / warmS / 1e9,
    });
    log(`load ${label}: ${cold.storedBytes} stored bytes, cold ${fmt(cold.seconds, 4)} s, warm ${fmt(warmS, 4)} s`);
  }
  return rows;
}

/** Peak RSS of loadModel(dir) in a fresh child process (see lib/load-rss-child.mjs). */
function measureLoadRss(dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(repoRoot, 'bench', 'lib', 'load-rss-child.mjs'), dir], {
      env: { ...process.env, SCALEOT_BACKEND: 'wasm' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      let reply = null;
      try {
        reply = JSON.parse(stdout.trim().split('\n').pop());
      } catch {
        // no JSON: report stderr below
      }
      if (code !== 0 || !reply || reply.error) {
        const why = reply?.error ?? stderr.trim().split('\n').filter((line) => /Error|error/.test(line)).slice(0, 2).join(' | ');
        reject(new Error(`load-rss-child (${dir}) exited with ${code}: ${why}`));
        return;
      }
      resolve(reply);
    });
  });
}

async function section(name, errors, work) {
  try {
    return await work();
  } catch (error) {
    errors[name] = error.message;
    log(`${name}: FAILED: ${error.message}`);
    return null;
  }
}

export async function main(opts) {
  const fixtures = fixturesDir(opts.fixtures);
  const tinyDir = path.join(fixtures, 'models', 'sotu-gpt2-tiny');
  const smallDir = path.join(fixtures, 'models', 'sotu-gpt2-small');
  const referencePath = path.join(fixtures, 'reference-logits.json');
  statSync(path.join(tinyDir, 'config.json'));
  const errors = {};
  const shape = { batch: opts.batch, seq: opts.seq, seed: opts.seed, steps: opts.steps, warmup: opts.warmup };

  // 1. Checkpoint read speed, in this process before anything else has touched the files.
  log('safetensors load speed: Checkpoint.open + readFloat32 of every tensor');
  const load = await section('load', errors, () => benchLoadSpeed([['small (F16, 3 shards)', smallDir], ['tiny (F32)', tinyDir]], opts['load-repeats']));

  // 2. Peak RSS of loadModel in fresh processes.
  log('peak RSS while loading: one child process per model');
  const rss = [];
  for (const [label, dir] of [['small', smallDir], ['tiny', tinyDir]]) {
    const row = await section(`rss_${label}`, errors, () => measureLoadRss(dir));
    if (row) rss.push({ model: label, ...row });
  }

  // 3. PyTorch on the same machine (installed with apt when missing).
  let torch = null;
  let torchStatus = null;
  if (opts.torch) {
    torchStatus = await ensurePyTorch({ install: opts.install });
    if (torchStatus.available) {
      log('PyTorch peer: tools/pytorch/gpt2_step.py (torch threads 1, OPENBLAS_NUM_THREADS=2)');
      torch = await section('torch', errors, () =>
        runPyTorchStep({ modelDir: tinyDir, ...shape, reference: referencePath, referenceKey: 'tiny' }));
    } else {
      errors.torch = `PyTorch unavailable: ${torchStatus.reason}`;
      log(errors.torch);
    }
  }

  // 4. Ours: wasm, one thread (Trainer) and two worker threads (DataParallelTrainer).
  const vocab = JSON.parse((await import('node:fs')).readFileSync(path.join(tinyDir, 'config.json'), 'utf8')).vocab_size;
  const ids = randomTokenBatch(opts.seed, opts.batch, opts.seq, vocab);
  const idsSum = ids.reduce((a, b) => a + b, 0);
  if (torch && torch.ids_sum !== idsSum) {
    errors.ids = `token batches differ: ours sums to ${idsSum}, PyTorch's to ${torch.ids_sum} (mulberry32 mirrors out of sync)`;
    log(errors.ids);
  }
  let ours1 = null;
  let ours2 = null;
  if (opts.ours) {
    ours1 = await section('ours_1thread', errors, () => runOurSteps({ kind: 'single', modelDir: tinyDir, ids, ...shape }));
    if (opts['two-threads']) {
      ours2 = await section('ours_2threads', errors, () => runOurSteps({ kind: 'parallel', workers: 2, modelDir: tinyDir, ids, ...shape }));
    }
  }

  // 5. Report.
  const torchStep = torch?.median_step_s ?? null;
  const oursStep = ours1?.median_step_s ?? null;
  const ours2Step = ours2?.median_step_s ?? null;
  const ratio = oursStep !== null && torchStep ? oursStep / torchStep : null;
  const ratio2 = ours2Step !== null && torchStep ? ours2Step / torchStep : null;
  const lossDiff = ours1?.first_loss != null && torch ? Math.abs(ours1.first_loss - torch.first_loss) : null;
  const lossDiff2 = ours2?.first_loss != null && torch ? Math.abs(ours2.first_loss - torch.first_loss) : null;
  const loadGbPerS = load ? load.reduce((a, r) => a + r.stored_bytes, 0) / load.reduce((a, r) => a + r.cold_s, 0) / 1e9 : null;
  const loadWarmGbPerS = load ? load.reduce((a, r) => a + r.stored_bytes, 0) / load.reduce((a, r) => a + r.warm_s, 0) / 1e9 : null;
  // The worst of the two models: the target holds for any model, not just the friendliest one.
  const rssRatio = rss.length ? Math.max(...rss.map((r) => r.rss_per_param_byte)) : null;

  const out = [];
  out.push(`train step: tiny GPT-2 (${tinyDir}), batch ${opts.batch} × ${opts.seq} tokens, seed ${opts.seed}, median of ${opts.steps} after ${opts.warmup} warmup`);
  out.push(table(['configuration', 'step s (median)', 'steps s', 'first loss', 'ratio vs PyTorch'], [
    ['ours wasm, 1 thread (Trainer)', fmt(oursStep), ours1 ? ours1.step_times_s.map((t) => fmt(t, 2)).join(' ') : errors.ours_1thread ? 'FAILED (below)' : 'skipped', fmt(ours1?.first_loss, 6), fmt(ratio)],
    ['ours wasm, 2 worker threads (DataParallelTrainer)', fmt(ours2Step), ours2 ? ours2.step_times_s.map((t) => fmt(t, 2)).join(' ') : errors.ours_2threads ? 'FAILED (below)' : 'skipped', fmt(ours2?.first_loss, 6), fmt(ratio2)],
    [`PyTorch ${torch?.torch_version ?? ''} (1 intra-op thread, OpenBLAS 2)`, fmt(torchStep), torch ? torch.step_times_s.map((t) => fmt(t, 2)).join(' ') : errors.torch ? 'FAILED (below)' : 'skipped', fmt(torch?.first_loss, 6), torch ? '1' : 'n/a'],
  ]));
  for (const key of ['ours_1thread', 'ours_2threads', 'torch', 'ids']) if (errors[key]) out.push(`${key}: ${errors[key]}`);
  out.push(`target: ours / PyTorch ≤ ${STEP_RATIO_TARGET}: ${ratio === null ? 'n/a' : ratio <= STEP_RATIO_TARGET ? 'MET' : 'NOT MET'} (1 thread ${fmt(ratio, 2)}, 2 threads ${fmt(ratio2, 2)})`);
  out.push(`first-step loss |ours − PyTorch|: 1 thread ${fmt(lossDiff, 6)}, 2 threads ${fmt(lossDiff2, 6)} (tolerance ${LOSS_TOLERANCE}: ${lossDiff === null ? 'n/a' : lossDiff <= LOSS_TOLERANCE && (lossDiff2 === null || lossDiff2 <= LOSS_TOLERANCE) ? 'AGREE' : 'DISAGREE'})`);
  if (torch?.reference_max_abs_diff !== undefined) {
    out.push(`PyTorch peer sanity: forward logits vs reference-logits.json[tiny]: max |diff| ${fmt(torch.reference_max_abs_diff, 6)} over ${torch.reference_positions} positions; BLAS ${torch.blas}`);
  }
  if (torchStatus?.aptInstalled.length) out.push(`apt installed ${torchStatus.aptInstalled.length} packages for the PyTorch peer (python3-torch, libopenblas0-pthread and dependencies)`);
  out.push('');
  out.push('safetensors load (Checkpoint.open + readFloat32 of every tensor; GB/s of stored tensor bytes)');
  out.push(table(['checkpoint', 'stored MB', 'float32 MB', 'cold s', 'cold GB/s', 'warm s', 'warm GB/s'],
    (load ?? []).map((r) => [r.model, fmt(r.stored_bytes / 1e6, 1), fmt(r.float32_bytes / 1e6, 1), fmt(r.cold_s, 4), fmt(r.cold_gb_per_s, 2), fmt(r.warm_s, 4), fmt(r.warm_gb_per_s, 2)])));
  if (errors.load) out.push(`load: ${errors.load}`);
  out.push('');
  out.push('peak RSS while loading (loadModel in a fresh process; (peak − RSS before) / float32 tensor bytes)');
  out.push(table(['model', 'float32 MB', 'load s', 'peak RSS / param byte'],
    rss.map((r) => [r.model, fmt(r.param_bytes / 1e6, 1), fmt(r.load_s, 3), fmt(r.rss_per_param_byte, 3)])));
  for (const key of ['rss_small', 'rss_tiny']) if (errors[key]) out.push(`${key}: ${errors[key]}`);
  out.push(`target: peak RSS ≤ ${RSS_TARGET}× float32 bytes: ${rssRatio === null ? 'n/a' : rssRatio <= RSS_TARGET ? 'MET' : 'NOT MET'} (worst ${fmt(rssRatio, 3)})`);
  process.stdout.write(`${out.join('\n')}\n`);

  emitJson(opts.json, {
    ours_step_s: oursStep,
    ours_step_2threads_s: ours2Step,
    torch_step_s: torchStep,
    pytorch_step_s: torchStep,
    ratio,
    ratio_2threads: ratio2,
    // Minimums too: on a shared VM the fastest step is the least disturbed one.
    ours_step_min_s: ours1 ? Math.min(...ours1.step_times_s) : null,
    ours_step_2threads_min_s: ours2 ? Math.min(...ours2.step_times_s) : null,
    torch_step_min_s: torch ? Math.min(...torch.step_times_s) : null,
    first_loss_ours: ours1?.first_loss ?? null,
    first_loss_ours_2threads: ours2?.first_loss ?? null,
    first_loss_torch: torch?.first_loss ?? null,
    first_loss_abs_diff: lossDiff,
    first_loss_abs_diff_2threads: lossDiff2,
    torch_reference_logits_max_abs_diff: torch?.reference_max_abs_diff ?? null,
    load_gb_per_s: loadGbPerS,
    load_warm_gb_per_s: loadWarmGbPerS,
    load: load ?? null,
    peak_rss_per_param_byte: rssRatio,
    load_peak_rss_ratio: rssRatio,
    rss: rss.map((r) => ({ model: r.model, param_bytes: r.param_bytes, load_s: r.load_s, rss_per_param_byte: r.rss_per_param_byte, hwm_reset: r.hwm_reset })),
    torch: torchStatus ? { available: torchStatus.available, version: torchStatus.version, blas: torchStatus.blas, apt_installed: torchStatus.aptInstalled } : null,
    ...shape,
    errors,
  });
  return Object.keys(errors).length ? 1 : 0;
}
