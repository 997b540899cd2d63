// Our side of the train-step bench: the tiny GPT-2 on the wasm backend, trained with Trainer (one
// thread) or DataParallelTrainer (worker threads), same hyper-parameters as tools/pytorch/gpt2_step.py.
import { importPackage, log, median, MissingExportError } from './common.mjs';

/** AdamW as on the PyTorch side; no gradient clipping there, so none here (same work per step). */
const ADAMW = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
const GRAD_CLIP = 0;

async function createTrainer(model, { kind, workers }) {
  if (kind === 'single') {
    const { Trainer } = await importPackage('@scaleot/model', ['Trainer']);
    return new Trainer(model, { adamW: ADAMW, gradClip: GRAD_CLIP });
  }
  const { DataParallelTrainer } = await importPackage('@scaleot/model', ['DataParallelTrainer']);
  if (typeof DataParallelTrainer.create !== 'function') {
    throw new MissingExportError('@scaleot/model DataParallelTrainer has no static create(model, opts); update bench/lib/ours.mjs to its API');
  }
  return DataParallelTrainer.create(model, { threads: workers, backend: 'wasm', adamW: ADAMW, gradClip: GRAD_CLIP });
}

/**
 * Loads the model, takes `warmup + steps` steps on the same batch, returns the median step time and
 * the first step's loss (computed before its update, i.e. at the checkpoint's weights).
 */
export async function runOurSteps({ kind, workers = 1, modelDir, ids, batch, seq, steps, warmup }) {
  const { initBackend } = await importPackage('@scaleot/backend', ['initBackend']);
  const { loadModel } = await importPackage('@scaleot/model', ['loadModel']);
  const tf = await import('@tensorflow/tfjs');
  await initBackend('wasm');
  if (tf.getBackend() !== 'wasm') throw new Error(`initBackend('wasm') left tfjs on "${tf.getBackend()}"`);
  const label = kind === 'single' ? 'ours, 1 thread' : `ours, ${workers} worker threads`;
  const model = await loadModel(modelDir);
  let trainer;
  try {
    trainer = await createTrainer(model, { kind, workers });
    const tokenBatch = { ids, rows: batch, seqLen: seq };
    const times = [];
    const losses = [];
    for (let step = 0; step < warmup + steps; step++) {
      const started = performance.now();
      const info = await trainer.step(tokenBatch);
      const seconds = (performance.now() - started) / 1000;
      losses.push(info.loss);
      log(`${label}: step ${step + 1}/${warmup + steps} (${step < warmup ? 'warmup' : 'timed'}): ${seconds.toFixed(3)} s, loss ${info.loss.toFixed(6)}`);
      if (step >= warmup) times.push(seconds);
    }
    return { first_loss: losses[0], losses, step_times_s: times, median_step_s: median(times), tf_memory: tf.memory().numBytes };
  } finally {
    // Trainer frees its optimizer state with dispose(); DataParallelTrainer ends its workers with close().
    await trainer?.close?.();
    trainer?.dispose?.();
    model.dispose();
  }
}
