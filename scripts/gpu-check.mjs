// The webgpu check behind scripts/gpu-check.sh: adapter info, reference logits on webgpu, adapter
// tuning tokens/s (what `scaleot tune` runs: tuneAdapter on a uniform emulator) on the tiny GPT-2 and
// on sotu-llama-24l, and the machine's own PyTorch (fp32, same job) for the ratio. One JSON object.
// Runs from the repository (node scripts/gpu-check.mjs) or bundled by gpu-check.sh for a machine
// without Node. Progress goes to stderr.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webGpuAdapterInfo } from '@scaleot/backend';
import { loadModel } from '@scaleot/model';
import { createUniformEmulator, tuneAdapter } from '@scaleot/offsite';

const { values: opt } = parseArgs({
  options: {
    fixtures: { type: 'string' }, // dir with reference-logits.json, families-reference.json, models/sotu-llama-24l
    tiny: { type: 'string' }, // the tiny GPT-2 model dir
    data: { type: 'string' }, // built-in tasks root (moby)
    torch: { type: 'string', default: 'tools/pytorch/tune_step.py' }, // PyTorch peer script ('' to skip)
    out: { type: 'string' },
    steps: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    batch: { type: 'string', default: '16' },
    'micro-batch': { type: 'string', default: '16' },
    seq: { type: 'string', default: '256' },
  },
});
for (const key of ['fixtures', 'tiny', 'data', 'out']) if (!opt[key]) throw new Error(`gpu-check.mjs: --${key} is required`);
const steps = Number(opt.steps);
const warmup = Number(opt.warmup);
const batch = Number(opt.batch);
const microBatch = Number(opt['micro-batch']);
const seq = Number(opt.seq);
const log = (msg) => process.stderr.write(`[gpu-check] ${msg}\n`);
const result = { started: new Date().toISOString(), node: process.version, tfjs: tf.version.tfjs, job: { steps, warmup, batch, microBatch, seq, task: 'moby' } };
const save = () => writeFileSync(opt.out, `${JSON.stringify(result, null, 2)}\n`);

function maxAbs(got, want) {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m;
}

/** Max |Δ| of the reference rows' logits and NLL (plain rows; the same comparison as the tests). */
async function referenceDeviation(dir, rows) {
  const model = await loadModel(dir);
  const dev = { rows: rows.length, maxLogit: 0, maxNll: 0 };
  try {
    for (const row of rows) {
      const t = row.ids.length;
      const ids = tf.tensor2d([row.ids], [1, t], 'int32');
      const logits = model.logits(ids);
      const nll = model.tokenNll(ids);
      const got = (await logits.array())[0];
      const gotNll = (await nll.array())[0];
      tf.dispose([ids, logits, nll]);
      for (const [pos, want] of Object.entries(row.logits)) dev.maxLogit = Math.max(dev.maxLogit, maxAbs(got[Number(pos)], want));
      row.nll.forEach((want, i) => {
        if (want !== null) dev.maxNll = Math.max(dev.maxNll, Math.abs(gotNll[i] - want));
      });
    }
  } finally {
    model.dispose();
  }
  dev.within1e4 = dev.maxLogit < 1e-4 && dev.maxNll < 1e-4;
  return dev;
}

async function tuneThroughput(label, modelDir, work) {
  const emuDir = join(work, `emu-${label}`);
  const emu = await createUniformEmulator({ modelDir, outDir: emuDir });
  const seconds = [];
  const losses = [];
  const started = performance.now();
  await tuneAdapter({
    emulatorDir: emuDir,
    task: 'moby',
    dataRoot: opt.data,
    outDir: join(work, `adapter-${label}`),
    hyper: { steps: warmup + steps, batchSize: batch, microBatchSize: microBatch, seqLen: seq, warmupSteps: 1, seed: 1 },
    onStep: (info) => {
      seconds.push(info.seconds);
      losses.push(info.loss);
      log(`${label}: step ${info.step}/${warmup + steps} ${info.seconds.toFixed(3)} s loss ${info.loss.toFixed(4)}`);
    },
  });
  const timed = seconds.slice(warmup);
  const total = timed.reduce((a, b) => a + b, 0);
  const layerMap = emu.manifest.layerMap;
  return {
    emulator: { layers: layerMap.flatMap((k, i) => (k === 'dropped' ? [] : [i])), adapters: layerMap.flatMap((k, i) => (k === 'adapter' ? [i] : [])) },
    firstStepSeconds: seconds[0],
    stepSeconds: timed,
    tokensPerStep: batch * seq,
    tokensPerSecond: (batch * seq * timed.length) / total,
    losses,
    wallSeconds: (performance.now() - started) / 1000,
  };
}

function torchThroughput(modelDir, emulator) {
  const args = [opt.torch, '--model', modelDir, '--layers', emulator.layers.join(','), '--train', emulator.adapters.join(','),
    '--batch', String(batch), '--seq', String(seq), '--steps', String(steps), '--warmup', String(warmup)];
  const child = spawnSync('python3', args, { encoding: 'utf8', env: { ...process.env, PYTHONUNBUFFERED: '1' }, timeout: 300_000 });
  if (child.error) return { error: child.error.message };
  process.stderr.write(child.stderr ?? '');
  const last = (child.stdout ?? '').trim().split('\n').at(-1);
  try {
    return JSON.parse(last);
  } catch {
    return { error: `exit ${child.status}: ${(child.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  }
}

const work = mkdtempSync(join(tmpdir(), 'scaleot-gpu-check-'));
try {
  const chosen = await initBackend('webgpu');
  result.backend = chosen;
  result.tfBackend = tf.getBackend();
  result.adapter = webGpuAdapterInfo() ?? null;
  save();
  if (chosen !== 'webgpu') throw new Error('the webgpu backend did not start (see the log line above); nothing to measure');
  log(`adapter: ${JSON.stringify(result.adapter)}`);

  const reference = JSON.parse(readFileSync(join(opt.fixtures, 'reference-logits.json'), 'utf8'));
  const families = JSON.parse(readFileSync(join(opt.fixtures, 'families-reference.json'), 'utf8'));
  const llamaDir = join(opt.fixtures, families.models.sotu_llama_24l.dir);
  result.reference = {
    gpt2Tiny: await referenceDeviation(opt.tiny, reference.models.tiny),
    sotuLlama24l: await referenceDeviation(llamaDir, families.models.sotu_llama_24l.rows),
  };
  log(`reference: ${JSON.stringify(result.reference)}`);
  save();

  result.tune = {};
  result.torch = {};
  result.ratio = {};
  for (const [label, dir] of [['gpt2Tiny', opt.tiny], ['sotuLlama24l', llamaDir]]) {
    result.tune[label] = await tuneThroughput(label, dir, work);
    log(`${label}: ${result.tune[label].tokensPerSecond.toFixed(0)} tokens/s on webgpu`);
    save();
    if (opt.torch) {
      result.torch[label] = torchThroughput(dir, result.tune[label].emulator);
      const torchTps = result.torch[label].tokens_per_second;
      result.ratio[label] = typeof torchTps === 'number' ? { webgpuOverTorch: result.tune[label].tokensPerSecond / torchTps } : null;
      save();
    }
  }
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  log(`FAILED: ${result.error}`);
  process.exitCode = 1;
} finally {
  result.finished = new Date().toISOString();
  save();
  rmSync(work, { recursive: true, force: true });
}
