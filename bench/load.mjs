// What every command does first: open an HF checkpoint and load the model (loadModel, tensor by
// tensor). Safetensors read speed, and the peak resident memory of loading relative to the model's
// float32 bytes, for the GPT-2 fixtures and the 24-block LLaMA (BF16, sharded).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { emitJson, fixturesDir, fmt, importPackage, log, median, repoRoot, table } from './lib/common.mjs';

export const description = 'loadModel: safetensors GB/s and peak RSS while loading / float32 bytes (gpt2 tiny, small; sotu-llama-24l)';

export const options = {
  fixtures: { type: 'string', help: 'fixtures dir (default ../shared/fixtures from the repo root)' },
  'load-repeats': { type: 'number', default: 5, help: 'warm checkpoint reads (median reported)' },
};

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
  const models = [
    ['gpt2 small (F16, 3 shards)', path.join(fixtures, 'models', 'sotu-gpt2-small')],
    ['gpt2 tiny (F32)', path.join(fixtures, 'models', 'sotu-gpt2-tiny')],
    ['llama 24 blocks (BF16, 2 shards)', path.join(fixtures, 'models', 'sotu-llama-24l')],
  ];
  const errors = {};
  log('safetensors load speed: Checkpoint.open + readFloat32 of every tensor');
  const load = await section('load', errors, () => benchLoadSpeed(models, opts['load-repeats']));
  log('peak RSS while loading: loadModel in one child process per model');
  const rss = [];
  for (const [label, dir] of models) {
    const row = await section(`rss ${label}`, errors, () => measureLoadRss(dir));
    if (row) rss.push({ model: label, ...row });
  }
  const rssRatio = rss.length ? Math.max(...rss.map((r) => r.rss_per_param_byte)) : null;
  const out = [];
  out.push('safetensors load (Checkpoint.open + readFloat32 of every tensor; GB/s of stored tensor bytes)');
  out.push(table(['checkpoint', 'stored MB', 'float32 MB', 'cold s', 'cold GB/s', 'warm s', 'warm GB/s'],
    (load ?? []).map((r) => [r.model, fmt(r.stored_bytes / 1e6, 1), fmt(r.float32_bytes / 1e6, 1), fmt(r.cold_s, 4), fmt(r.cold_gb_per_s, 2), fmt(r.warm_s, 4), fmt(r.warm_gb_per_s, 2)])));
  out.push('');
  out.push('peak RSS while loading (loadModel in a fresh process; (peak − RSS before) / float32 tensor bytes)');
  out.push(table(['model', 'float32 MB', 'load s', 'peak RSS / float32 bytes'], rss.map((r) => [r.model, fmt(r.param_bytes / 1e6, 1), fmt(r.load_s, 3), fmt(r.rss_per_param_byte, 3)])));
  for (const [k, v] of Object.entries(errors)) out.push(`${k}: ${v}`);
  out.push(`target: peak RSS ≤ ${RSS_TARGET}× float32 bytes: ${rssRatio === null ? 'n/a' : rssRatio <= RSS_TARGET ? 'MET' : 'NOT MET'} (worst ${fmt(rssRatio, 3)})`);
  process.stdout.write(`${out.join('\n')}\n`);
  emitJson(opts.json, {
    load_peak_rss_ratio: rssRatio,
    rss: rss.map((r) => ({ model: r.model, param_bytes: r.param_bytes, load_s: r.load_s, rss_per_param_byte: r.rss_per_param_byte, hwm_reset: r.hwm_reset })),
    load: load ?? null,
    errors,
  });
  return Object.keys(errors).length ? 1 : 0;
}
