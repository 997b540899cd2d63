// Pipeline parallelism at scale: a random LLaMA-shaped checkpoint of at least 1.5 GB (float32),
// written with the project's checkpoint writer in a temp dir, evaluated by the Moby-Dick protocol
// across k = 1, 2 and 3 real worker processes (Redis queue, ZeroMQ stage to stage), then one stage-1
// step (harmonizer gradients backward stage to stage, rollouts forward: runPipelineStage1) on fresh
// workers of the same k. Prints each worker's peak RSS against 1.3 x model_bytes / k + the fixed
// per-process overhead, tokens/s, bytes moved per step and the stage-to-stage transfer rate; for the
// stage-1 step its seconds, each worker's peak RSS (load + the step) and the bytes the stages sent.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { emitJson, fixturesDir, fmt, importPackage, log, mulberry32, repoRoot, table } from './lib/common.mjs';

export const description = 'pipeline-parallel evaluation and one stage-1 step of a random >=1.5 GB LLaMA over k = 1, 2, 3 worker processes: peak RSS per worker, tokens/s, step seconds, bytes moved, transfer GB/s';

export const options = {
  fixtures: { type: 'string', help: 'fixtures dir (tokenizer of sotu-llama-24l; default ../shared/fixtures)' },
  layers: { type: 'number', default: 30, help: 'blocks of the random model' },
  hidden: { type: 'number', default: 1024, help: 'hidden size' },
  intermediate: { type: 'number', default: 2816, help: 'MLP width' },
  ctx: { type: 'number', default: 256, help: 'max_position_embeddings: the evaluation context' },
  'max-blocks': { type: 'number', default: 4, help: 'Moby-Dick evaluation blocks scored per run' },
  'micro-batch': { type: 'number', default: 2, help: 'rows per micro-batch' },
  ks: { type: 'string', default: '1,2,3', help: 'worker counts to run' },
  stage1: { type: 'boolean', default: true, help: 'also run one stage-1 step per k (--no-stage1 to skip)' },
  's1-batch': { type: 'number', default: 2, help: 'stage-1 step: training rows (batchSize)' },
  's1-micro': { type: 'number', default: 1, help: 'stage-1 step: rows per micro-batch (micro-batches pipeline through the stages)' },
  's1-seq': { type: 'number', default: 64, help: 'stage-1 step: tokens per row (seqLen)' },
  's1-rl-batch': { type: 'number', default: 2, help: 'stage-1 step: rollout rows per candidate (rlBatchSize)' },
  's1-candidates': { type: 'number', default: 2, help: 'stage-1 step: rollout candidates' },
  's1-rank': { type: 'number', default: 64, help: 'stage-1 step: harmonizer rank' },
  redis: { type: 'string', default: 'redis://127.0.0.1:6379', help: 'Redis of the queue' },
};

const RSS_TARGET = 1.3;
// Caps per worker as a share of the model's float32 bytes (plus the fixed overhead): 45% is the issue's
// figure; two workers cannot hold a model at 45% each, so k = 2 runs at 60% (the plan at 45% is shown
// to fail with DOES_NOT_FIT), and k = 1 runs uncapped (the baseline, when the machine holds it).
const CAP_SHARE = { 1: null, 2: 0.6, 3: 0.45 };

function llamaConfig(o) {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: o.hidden, intermediate_size: o.intermediate, num_hidden_layers: o.layers,
    num_attention_heads: o.hidden / 64, num_key_value_heads: o.hidden / 64, head_dim: 64, max_position_embeddings: o.ctx, rms_norm_eps: 1e-5,
    rope_theta: 10000, vocab_size: 4096, tie_word_embeddings: false, attention_bias: false, mlp_bias: false, hidden_act: 'silu', torch_dtype: 'float32', bos_token_id: 0, eos_token_id: 0,
  };
}

async function writeRandomCheckpoint(dir, raw, fixtures) {
  const { writeCheckpoint } = await importPackage('@scaleot/checkpoint', ['writeCheckpoint']);
  const { parseModelConfig, familyOf, expectedParameters } = await importPackage('@scaleot/model', ['parseModelConfig', 'familyOf', 'expectedParameters']);
  const config = parseModelConfig(raw, 'config.json');
  const specs = expectedParameters(config);
  const next = mulberry32(1234);
  const tensors = specs.map((spec) => {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (spec.shape.length === 1) data.fill(1);
    else for (let i = 0; i < size; i++) data[i] = (next() / 2 ** 32 - 0.5) * 0.06;
    return { name: spec.name, dtype: 'F32', shape: spec.shape, data };
  });
  const bytes = tensors.reduce((n, t) => n + t.data.byteLength, 0);
  const tok = path.join(fixtures, 'models', 'sotu-llama-24l');
  await writeCheckpoint(dir, tensors, {
    config: raw,
    parameters: { specs, naming: familyOf(config).naming },
    maxShardBytes: 512 * 2 ** 20,
    extraFiles: ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => path.join(tok, f)),
  });
  return bytes;
}

function fixedOverhead() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bench', 'lib', 'pipeline-overhead-child.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SCALEOT_LOG_LEVEL: 'warn' } });
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) {
        child.kill();
        resolve(JSON.parse(out.trim().split('\n').at(-1)).peak_rss_bytes);
      }
    });
    child.on('exit', (code) => (out.includes('\n') ? undefined : reject(new Error(`overhead child exited ${code} without a figure`))));
  });
}

/** Worker cap of a run with k workers (bytes). */
function capOf(k, ctx) {
  const share = CAP_SHARE[k] ?? null;
  return { share, cap: share === null ? Math.round(ctx.modelBytes * 2 + ctx.overhead) : Math.round(share * ctx.modelBytes + ctx.overhead) };
}

/** Runs `work(queue)` with k fresh worker processes capped at `cap` (fresh: each phase's peak RSS is its own). */
async function withWorkers(k, cap, ctx, work) {
  const { spawnApp, stopApp, uniqueQueuePrefix } = await importPackage('@scaleot/cluster', ['spawnApp', 'stopApp', 'uniqueQueuePrefix']);
  const { JobQueue } = await importPackage('@scaleot/queue', ['JobQueue']);
  const prefix = uniqueQueuePrefix('bench-pipe');
  const queue = new JobQueue({ name: 'scaleot', connection: ctx.redis, prefix });
  const workers = [];
  try {
    for (let i = 0; i < k; i++) {
      workers.push(spawnApp('worker', `worker-${i}`, { SCALEOT_REDIS_URL: ctx.redis, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: ctx.dir, SCALEOT_METRICS_PORT: '0', SCALEOT_WORKER_MEMORY_BYTES: String(cap), SCALEOT_LOG_LEVEL: 'info' }));
    }
    await Promise.all(workers.map((w) => w.waitForLog('worker ready', 120_000).catch(() => undefined)));
    return await work(queue);
  } finally {
    await Promise.all(workers.map((w) => stopApp(w, 20_000)));
    await queue.queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

async function runK(k, ctx) {
  const { runPipelineEvaluation } = await importPackage('@scaleot/cluster', ['runPipelineEvaluation']);
  const { share, cap } = capOf(k, ctx);
  return withWorkers(k, cap, ctx, async (queue) => {
    let run;
    try {
      run = await runPipelineEvaluation({
        queue, model: ctx.dir, storageDir: ctx.dir, task: 'moby', dataRoot: path.join(repoRoot, 'data'), budgets: new Array(k).fill(cap),
        plan: { fixedOverheadBytes: ctx.overhead }, maxBlocks: ctx.maxBlocks, batchSize: ctx.maxBlocks, microBatch: ctx.microBatch,
      });
    } catch (e) {
      if (e?.code !== 'DOES_NOT_FIT') throw e;
      log(`k = ${k}: ${e.message}`);
      return { k, cap_bytes: cap, cap_share: share, plan: 'DOES_NOT_FIT', value: null, peak_rss_bytes: [], max_worker_peak_rss_bytes: null, target_bytes: null, tokens_per_s: null, bytes_per_step: null, transfer_gb_per_s: null };
    }
    const hopBytes = run.stages.reduce((n, s) => n + (s.stage > 0 ? s.hopBytes : 0), 0);
    const hopSeconds = run.stages.reduce((n, s) => n + (s.stage > 0 ? s.hopSeconds : 0), 0);
    const peak = Math.max(...run.stages.map((s) => s.peakRssBytes));
    return {
      k, cap_bytes: cap, cap_share: share, plan: run.plan.stages.map((s) => `[${s.from},${s.to})`).join(' '),
      value: run.result.value, tokens: run.result.count,
      peak_rss_bytes: run.stages.map((s) => s.peakRssBytes), max_worker_peak_rss_bytes: peak,
      target_bytes: RSS_TARGET * ctx.modelBytes / k + ctx.overhead,
      tokens_per_s: run.result.count / run.seconds, seconds: run.seconds,
      bytes_per_step: run.microBatches ? run.interStageBytes / run.microBatches : 0,
      transfer_gb_per_s: hopSeconds > 0 ? hopBytes / hopSeconds / 1e9 : null,
      load_seconds: Math.max(...run.ready.map((r) => r.loadSeconds)),
    };
  });
}

/**
 * One stage-1 step (gradients through the stages, then the rollouts) on k fresh workers. k = 1 is a
 * one-stage plan on one worker (the same stage code and figures as k > 1), not the in-process runStage1:
 * the bench process' own RSS would hold the harmonizers' optimizer and the corpus as well.
 */
async function runStage1K(k, ctx) {
  const { runPipelineStage1 } = await importPackage('@scaleot/cluster', ['runPipelineStage1']);
  const { cap } = capOf(k, ctx);
  return withWorkers(k, cap, ctx, async (queue) => {
    let compute;
    let run;
    try {
      run = await runPipelineStage1({
        queue, modelDir: ctx.dir, storageDir: ctx.dir, outDir: path.join(ctx.dir, `stage1-k${k}`), streams: ctx.streams, resume: false,
        budgets: new Array(k).fill(cap), plan: { fixedOverheadBytes: ctx.overhead },
        ...ctx.stage1, steps: 1, warmupSteps: 0,
        onStep: (_entry, c) => (compute = { ...c }),
      });
    } catch (e) {
      if (e?.code !== 'DOES_NOT_FIT') throw e;
      log(`k = ${k} stage 1: ${e.message}`);
      return { plan: 'DOES_NOT_FIT', step_seconds: null, peak_rss_bytes: [], max_worker_peak_rss_bytes: null, bytes_per_step: null };
    }
    const entry = run.log.at(-1);
    const hopBytes = run.stages.reduce((n, s) => n + (s.stage > 0 ? s.hopBytes : 0), 0);
    const hopSeconds = run.stages.reduce((n, s) => n + (s.stage > 0 ? s.hopSeconds : 0), 0);
    return {
      plan: run.plan.stages.map((s) => `[${s.from},${s.to})`).join(' '),
      step_seconds: entry.seconds, gradient_seconds: compute?.gradientSeconds ?? null, rollout_seconds: compute?.rolloutSeconds ?? null,
      loss: entry.loss,
      peak_rss_bytes: run.stages.map((s) => s.peakRssBytes), max_worker_peak_rss_bytes: Math.max(...run.stages.map((s) => s.peakRssBytes)),
      // Stage to stage, as the session counts it (the evaluation column's figure): every stage's sends
      // but the last one's, whose sends to the coordinator (losses, its harmonizers' gradients) are not
      // told apart from its gradient hop back (StageStats sums the two), so that one hop is left out.
      bytes_per_step: run.interStageBytes,
      forward_hop_bytes: hopBytes,
      stage_compute_seconds: run.stages.map((s) => s.computeSeconds),
      transfer_gb_per_s: hopSeconds > 0 ? hopBytes / hopSeconds / 1e9 : null,
      micro_batches: run.microBatches,
      load_seconds: Math.max(...run.ready.map((r) => r.loadSeconds)),
    };
  });
}

export async function main(opts) {
  const fixtures = fixturesDir(opts.fixtures);
  const raw = llamaConfig(opts);
  const dir = await mkdtemp(path.join(tmpdir(), 'scaleot-bench-pipeline-'));
  try {
    log(`writing a random ${opts.layers}-block LLaMA (hidden ${opts.hidden}, MLP ${opts.intermediate}) to ${dir}`);
    const modelBytes = await writeRandomCheckpoint(dir, raw, fixtures);
    log(`model: ${(modelBytes / 1e9).toFixed(3)} GB float32`);
    if (modelBytes < 1.5e9) log('WARNING: under the 1.5 GB the issue asks for; raise --layers');
    const overhead = await fixedOverhead();
    log(`fixed per-process overhead (Node + tfjs wasm compute thread, no model): ${(overhead / 2 ** 20).toFixed(0)} MiB`);
    const { planStages, parseModelConfig, PipelinePlanError } = await importPackage('@scaleot/model', ['planStages', 'parseModelConfig', 'PipelinePlanError']);
    let k2At45 = 'fits';
    try {
      planStages(parseModelConfig(raw, 'config.json'), { budgets: [0.45 * modelBytes + overhead, 0.45 * modelBytes + overhead], fixedOverheadBytes: overhead });
    } catch (e) {
      k2At45 = e instanceof PipelinePlanError ? `${e.code} (needs ${e.details.requiredWorkers} workers)` : String(e);
    }
    log(`plan for k = 2 at 45% each: ${k2At45}`);
    const ctx = { dir, modelBytes, overhead, redis: opts.redis, maxBlocks: opts['max-blocks'], microBatch: opts['micro-batch'] };
    const s1 = { batchSize: opts['s1-batch'], microBatchSize: opts['s1-micro'], seqLen: opts['s1-seq'], rlBatchSize: opts['s1-rl-batch'], candidates: opts['s1-candidates'], rank: opts['s1-rank'] };
    if (opts.stage1) {
      const { corpusStreams } = await importPackage('@scaleot/scaleot', ['corpusStreams']);
      ctx.streams = await corpusStreams('sotu', path.join(repoRoot, 'data'), dir, 8);
      ctx.stage1 = { ...s1, seed: 7 };
    }
    const runs = [];
    for (const k of opts.ks.split(',').map(Number)) {
      log(`k = ${k}: starting ${k} worker(s)`);
      const run = await runK(k, ctx);
      if (opts.stage1 && run.value === null) {
        // The same planner, the same budgets: stage 1 does not fit either.
        run.stage1 = { plan: 'DOES_NOT_FIT', step_seconds: null, peak_rss_bytes: [], max_worker_peak_rss_bytes: null, bytes_per_step: null };
      } else if (opts.stage1) {
        log(`k = ${k}: one stage-1 step on ${k} fresh worker(s)`);
        run.stage1 = await runStage1K(k, ctx);
      }
      runs.push(run);
      log(`k = ${k}: ${JSON.stringify(runs.at(-1))}`);
    }
    const base = runs.find((r) => r.value !== null)?.value ?? null;
    process.stdout.write(`model ${(modelBytes / 1e9).toFixed(3)} GB float32, fixed overhead ${(overhead / 2 ** 20).toFixed(0)} MiB, ${opts['max-blocks']} Moby-Dick blocks of ${opts.ctx + 1} tokens; k = 2 at 45%: ${k2At45}\n`);
    process.stdout.write(`${table(
      ['k', 'cap/worker', 'plan', 'peak RSS per worker (MiB)', 'max / target', 'tokens/s', 'MiB moved/step', 'transfer GB/s', 'ppl', 'rel. diff vs k=' + runs[0].k],
      runs.map((r) => [r.k, r.cap_share === null ? 'none' : `${Math.round(r.cap_share * 100)}% + overhead`, r.plan, r.peak_rss_bytes.map((b) => (b / 2 ** 20).toFixed(0)).join(' / '), r.value === null ? 'n/a' : fmt(r.max_worker_peak_rss_bytes / r.target_bytes, 2), fmt(r.tokens_per_s, 1), r.value === null ? 'n/a' : fmt(r.bytes_per_step / 2 ** 20, 2), fmt(r.transfer_gb_per_s, 2), fmt(r.value, 4), r.value === null || base === null ? 'n/a' : fmt(Math.abs(r.value - base) / base, 9)]),
    )}\n`);
    if (opts.stage1) {
      const tokens = s1.batchSize * s1.seqLen;
      process.stdout.write(`\none stage-1 step: ${s1.batchSize} rows x ${s1.seqLen} tokens (${s1.microBatchSize} row(s) per micro-batch), rank ${s1.rank}, ${s1.candidates} rollout candidates x ${s1.rlBatchSize} rows; k = 1 is a one-stage plan on one worker\n`);
      process.stdout.write(`${table(
        ['k', 'plan', 'step s', 'gradients s', 'rollouts s', 'compute s per stage', 'train tokens/s', 'peak RSS per worker (MiB)', 'max / target', 'MiB moved/step', 'MiB forward', 'transfer GB/s', 'loss'],
        runs.map(({ k, stage1: t }) => [k, t.plan, fmt(t.step_seconds, 2), fmt(t.gradient_seconds, 2), fmt(t.rollout_seconds, 2), t.stage_compute_seconds ? t.stage_compute_seconds.map((x) => x.toFixed(1)).join(' / ') : 'n/a', t.step_seconds ? fmt(tokens / t.step_seconds, 1) : 'n/a', t.peak_rss_bytes.map((b) => (b / 2 ** 20).toFixed(0)).join(' / '), t.max_worker_peak_rss_bytes === null ? 'n/a' : fmt(t.max_worker_peak_rss_bytes / (RSS_TARGET * modelBytes / k + overhead), 2), t.bytes_per_step === null ? 'n/a' : fmt(t.bytes_per_step / 2 ** 20, 2), t.forward_hop_bytes === undefined ? 'n/a' : fmt(t.forward_hop_bytes / 2 ** 20, 2), fmt(t.transfer_gb_per_s, 2), fmt(t.loss, 5)]),
      )}\n`);
      process.stdout.write('MiB moved/step: stage to stage as the session counts it (activations forward, gradients back), but for the last stage\'s gradient hop back, which its stats do not tell apart from its replies to the coordinator; MiB forward: the activations alone\n');
    }
    const last = runs.filter((r) => r.value !== null).at(-1) ?? runs.at(-1);
    const step = last.stage1;
    emitJson(opts.json, {
      model_bytes: modelBytes, k: last.k, max_worker_peak_rss_bytes: last.max_worker_peak_rss_bytes, fixed_overhead_bytes: overhead, tokens_per_s: last.tokens_per_s, transfer_gb_per_s: last.transfer_gb_per_s,
      target_met: last.value !== null && last.max_worker_peak_rss_bytes <= last.target_bytes,
      stage1_step_seconds: step?.step_seconds ?? null, stage1_max_worker_peak_rss_bytes: step?.max_worker_peak_rss_bytes ?? null, stage1_bytes_per_step: step?.bytes_per_step ?? null,
      runs,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
