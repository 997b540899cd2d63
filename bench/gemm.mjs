// BatchMatMul GFLOP/s on the wasm backend: the OpenBLAS kernel (@scaleot/blas, what ships when the
// addon is built) vs the wasm kernel (SCALEOT_NATIVE_GEMM=0), at the tiny GPT-2's training shapes
// (16 × 256 tokens, d 128, 4 heads, MLP 512, vocab 4096) incl. the transposed gradient products.
import { emitJson, fmt, importPackage, log, median, table } from './lib/common.mjs';

export const description = 'BatchMatMul GFLOP/s, OpenBLAS addon vs the wasm kernel, at the tiny GPT-2 training shapes (1 thread)';

export const options = {
  repeats: { type: 'number', default: 5, help: 'timed calls per shape and kernel (median reported)' },
  'blas-threads': { type: 'number', default: 1, help: 'OpenBLAS threads (what ships: 1, one replica per core)' },
  shapes: { type: 'string', help: 'only these shapes (comma-separated names)' },
};

// [name, aShape, bShape, transposeA, transposeB]
const SHAPES = [
  ['lm-head [4096x128]x[4096x128]^T', [4096, 128], [4096, 128], false, true],
  ['c_attn [4096x128]x[128x384]', [4096, 128], [128, 384], false, false],
  ['mlp-up [4096x128]x[128x512]', [4096, 128], [128, 512], false, false],
  ['mlp-down [4096x512]x[512x128]', [4096, 512], [512, 128], false, false],
  ['brief [4096x128]x[128x344]', [4096, 128], [128, 344], false, false],
  ['dW mlp-up [4096x128]^T x[4096x512]', [4096, 128], [4096, 512], true, false],
  ['dX mlp-up [4096x512]x[128x512]^T', [4096, 512], [128, 512], false, true],
  ['attn scores [64,256,32]x[64,256,32]^T', [64, 256, 32], [64, 256, 32], false, true],
  ['attn values [64,256,256]x[64,256,32]', [64, 256, 256], [64, 256, 32], false, false],
];

export async function main(opts) {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend, selectBatchMatMul } = await importPackage('@scaleot/backend', ['initBackend', 'selectBatchMatMul']);
  await initBackend('wasm');
  const probe = selectBatchMatMul(true, { ...process.env, OPENBLAS_NUM_THREADS: String(opts['blas-threads']) });
  const errors = {};
  if (probe.gemm !== 'openblas') errors.native = `OpenBLAS addon unavailable: ${probe.reason}`;
  if (opts['blas-threads'] !== 1 && probe.gemm === 'openblas') {
    const { loadNativeGemm } = await importPackage('@scaleot/blas', ['loadNativeGemm']);
    loadNativeGemm().gemm.setThreads(opts['blas-threads']);
  }
  const wanted = opts.shapes ? new Set(opts.shapes.split(',').map((s) => s.trim())) : undefined;
  const rows = [];
  const results = [];
  for (const [name, aShape, bShape, ta, tb] of SHAPES) {
    if (wanted && ![...wanted].some((w) => name.startsWith(w))) continue;
    const a = tf.randomUniform(aShape, -1, 1);
    const b = tf.randomUniform(bShape, -1, 1);
    const rank = aShape.length;
    const m = ta ? aShape[rank - 1] : aShape[rank - 2];
    const k = ta ? aShape[rank - 2] : aShape[rank - 1];
    const n = tb ? bShape[rank - 2] : bShape[rank - 1];
    const batch = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
    const flops = 2 * batch * m * n * k;
    const time = (native) => {
      if (native && probe.gemm !== 'openblas') return null;
      selectBatchMatMul(native);
      tf.matMul(a, b, ta, tb).dispose(); // warm-up
      // The wasm backend runs kernels synchronously: matMul returns with the product on the heap.
      const times = [];
      const cpu = [];
      for (let r = 0; r < opts.repeats; r++) {
        const started = performance.now();
        const cpuStarted = process.cpuUsage();
        const out = tf.matMul(a, b, ta, tb);
        const used = process.cpuUsage(cpuStarted);
        times.push((performance.now() - started) / 1000);
        cpu.push((used.user + used.system) / 1e6);
        out.dispose();
      }
      return { wall: median(times), cpu: median(cpu) };
    };
    log(`${name}: ${opts.repeats} calls per kernel`);
    const wasmS = time(false);
    const nativeS = time(true);
    tf.dispose([a, b]);
    const gflop = flops / 1e9;
    const result = {
      shape: name,
      gflop,
      wasm_s: wasmS.wall,
      native_s: nativeS?.wall ?? null,
      wasm_gflops: gflop / wasmS.wall,
      native_gflops: nativeS === null ? null : gflop / nativeS.wall,
      wasm_cpu_gflops: gflop / wasmS.cpu,
      native_cpu_gflops: nativeS === null ? null : gflop / nativeS.cpu,
      speedup: nativeS === null ? null : wasmS.wall / nativeS.wall,
    };
    results.push(result);
    rows.push([
      name,
      fmt(result.wasm_gflops, 1),
      fmt(result.native_gflops, 1),
      fmt(result.wasm_cpu_gflops, 1),
      fmt(result.native_cpu_gflops, 1),
      fmt(result.speedup, 2),
    ]);
  }
  // The causal lever: the six attention products of one forward + backward (q·kᵀ, p·v, dy·vᵀ, pᵀ·dy,
  // ds·k, dsᵀ·q) over [64, 256, 32] (4 heads × 16 rows), full BatchMatMuls vs the block-causal kernel.
  let causal = null;
  if (probe.gemm === 'openblas' && !(wanted && !wanted.has('causal'))) {
    const { causalMatMul } = await importPackage('@scaleot/backend', ['causalMatMul']);
    selectBatchMatMul(true);
    const [B, t, d] = [64, 256, 32];
    const q = tf.randomUniform([B, t, d], -1, 1);
    const v = tf.randomUniform([B, t, d], -1, 1);
    const p = tf.tidy(() => tf.softmax(tf.add(tf.matMul(q, v, false, true), tf.linalg.bandPart(tf.ones([t, t]), -1, 0).sub(1).mul(1e9))));
    const full = () => [tf.matMul(q, v, false, true), tf.matMul(p, v), tf.matMul(q, v, false, true), tf.matMul(p, q, true, false), tf.matMul(p, v), tf.matMul(p, q, true, false)];
    const blocks = () => [causalMatMul(q, v, 'scores'), causalMatMul(p, v, 'lower'), causalMatMul(q, v, 'scores'), causalMatMul(p, q, 'lowerT'), causalMatMul(p, v, 'lower'), causalMatMul(p, q, 'lowerT')];
    const time = (fn) => {
      tf.dispose(fn());
      const times = [];
      for (let r = 0; r < opts.repeats; r++) {
        const started = performance.now();
        const out = fn();
        times.push((performance.now() - started) / 1000);
        tf.dispose(out);
      }
      return median(times);
    };
    log(`causal attention products: ${opts.repeats} rounds of six`);
    const fullS = time(full);
    const blockS = time(blocks);
    tf.dispose([q, v, p]);
    causal = { shape: '[64,256,32] six attention products', full_s: fullS, causal_s: blockS, speedup: fullS / blockS };
  }
  selectBatchMatMul(true);
  if (causal) process.stdout.write(`causal attention, six products over [64,256,32] (OpenBLAS): full ${fmt(causal.full_s * 1000, 1)} ms, block-causal ${fmt(causal.causal_s * 1000, 1)} ms, ${fmt(causal.speedup, 2)}×\n`);
  process.stdout.write(`BatchMatMul on the wasm backend, median of ${opts.repeats} (GFLOP/s of wall time, and of this process' CPU time: the difference is other load); OpenBLAS threads ${opts['blas-threads']}; ${probe.library ?? probe.reason}\n`);
  process.stdout.write(`${table(['shape', 'wasm GFLOP/s', 'OpenBLAS GFLOP/s', 'wasm per CPU-s', 'OpenBLAS per CPU-s', 'speedup (wall)'], rows)}\n`);
  emitJson(opts.json, { blas_threads: opts['blas-threads'], library: probe.library ?? null, results, causal, errors });
  return 0;
}
