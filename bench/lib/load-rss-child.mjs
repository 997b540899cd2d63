// Child process of bench/load.mjs: loads one model with loadModel(dir) and reports how much
// resident memory loading cost, relative to the float32 bytes of the model's tensors.
// Usage: node bench/lib/load-rss-child.mjs <model dir>; prints one JSON object on stdout.
import { readFileSync, writeFileSync } from 'node:fs';
import { importPackage } from './common.mjs';

const dir = process.argv[2];
const kib = 1024;

function vmHwmBytes() {
  const match = readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
  return match ? Number(match[1]) * kib : null;
}

/** Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM to the current RSS. */
function resetVmHwm() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

let initBackend;
let loadModel;
try {
  ({ initBackend } = await importPackage('@scaleot/backend', ['initBackend']));
  ({ loadModel } = await importPackage('@scaleot/model', ['loadModel']));
} catch (error) {
  // One line the parent can show as is.
  process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
  process.exit(1);
}
const tf = await import('@tensorflow/tfjs');
await initBackend('wasm');
// Touch the backend once so its module instance and first heap pages count in the baseline, not in
// the load.
tf.tidy(() => tf.matMul(tf.ones([8, 8]), tf.ones([8, 8])).dataSync());
globalThis.gc?.();

const baselineMaxRss = process.resourceUsage().maxRSS * kib;
const baselineRss = process.memoryUsage().rss;
const hwmReset = resetVmHwm();

const started = performance.now();
const model = await loadModel(dir);
const loadS = (performance.now() - started) / 1000;

const peakMaxRss = process.resourceUsage().maxRSS * kib;
const peakHwm = vmHwmBytes();
let paramBytes = 0;
for (const variable of model.namedWeights().values()) paramBytes += variable.size * 4;

process.stdout.write(
  `${JSON.stringify({
    dir,
    backend: tf.getBackend(),
    load_s: loadS,
    param_bytes: paramBytes,
    baseline_rss: baselineRss,
    baseline_max_rss: baselineMaxRss,
    peak_max_rss: peakMaxRss,
    hwm_reset: hwmReset,
    // getrusage maxRSS after the load minus the resident size right before it. With the high-water
    // mark reset just before the load, maxRSS is the peak of the load itself; without the reset
    // (old kernel, /proc read-only) it falls back to maxRSS growth, which can only under-count.
    rss_per_param_byte: hwmReset
      ? (Math.max(peakMaxRss, peakHwm ?? 0) - baselineRss) / paramBytes
      : (peakMaxRss - baselineMaxRss) / paramBytes,
  })}\n`,
);
model.dispose();
