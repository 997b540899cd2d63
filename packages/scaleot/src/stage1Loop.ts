import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Progress, type Logger } from '@scaleot/core';
import { Rng } from '@scaleot/data';
import { warmupCosine, type ModelConfig } from '@scaleot/model';
import type { SourceModelInfo } from '@scaleot/offsite';
import * as tf from '@tensorflow/tfjs';
import { Harmonizer } from './Harmonizer.js';
import { applyHarmonizerUpdate, HarmonizerOptimizer } from './harmonizerStep.js';
import { reinforceUpdate, sampleGroupedMask } from './importance.js';
import {
  hasStage1State,
  initialStage1State,
  loadStage1State,
  saveStage1State,
  STAGE1_STATE,
  writeStage1Artifacts,
  type Stage1HyperParameters,
  type Stage1Result,
  type Stage1StateFormat,
  type Stage1StepLog,
} from './stage1.js';
import type { Stage1Layout } from './stage1Artifacts.js';
import type { Stage1Executor, Stage1Round } from './Stage1Executor.js';

/** Loop-side timing of a round (the executor knows its own compute time). */
export interface Stage1LoopTiming {
  /** Wall clock of the whole round. */
  seconds: number;
  /** Optimizer update + importance update, in the loop. */
  updateSeconds: number;
  checkpointSeconds: number;
}

export interface Stage1LoopOptions {
  hyper: Stage1HyperParameters;
  layout: Stage1Layout;
  modelConfig: Pick<ModelConfig, 'nLayer' | 'hiddenSize' | 'normEps'>;
  source: SourceModelInfo;
  streams: { train: Int32Array; val: Int32Array };
  outDir: string;
  checkpointDir: string;
  /** Continue from the checkpoint when there is one. Default true. */
  resume?: boolean;
  /** Checkpoint every N steps (and at a stop). Default 50. */
  checkpointEvery?: number;
  /** End after this step (the checkpoint holds the state). Default: run to `hyper.steps`. */
  stopAfterStep?: number;
  /** Checkpoint tag and errors. Default STAGE1_STATE. */
  stateFormat?: Stage1StateFormat;
  /** Extra settings the manifest records beside the hyper-parameters (e.g. the cluster's shards). */
  manifestExtras?: Record<string, unknown>;
  /** Delete the checkpoint once the artifacts are written. Default false. */
  removeCheckpoint?: boolean;
  /** Progress unit ('step' | 'round'). Default 'step'. */
  unit?: string;
  onStep?: (entry: Stage1StepLog, timing: Stage1LoopTiming) => void;
  logger?: Logger;
}

/**
 * The one stage-1 loop (Dynamic LayerReplace), whatever executes its compute: seeded draws of masks,
 * batch windows and candidates; the harmonizers' clipped AdamW update under warmup + cosine; the
 * reinforce update of the importance scores; checkpoints (a resumed run continues bit-identically) and
 * the artifact directory. Same seed, same draws, so every executor gives the same run up to float
 * summation order.
 */
export async function stage1Loop(executor: Stage1Executor, opts: Stage1LoopOptions): Promise<Stage1Result> {
  const started = performance.now();
  const { hyper, layout, streams } = opts;
  const stateFormat = opts.stateFormat ?? STAGE1_STATE;
  const fingerprint = { source: opts.source.sha256, hyper, streams: { train: streams.train.length, val: streams.val.length } };
  const harmonizers = new Map<number, Harmonizer>();
  let optimizer: HarmonizerOptimizer | undefined;
  try {
    for (const i of layout.middle) harmonizers.set(i, new Harmonizer(i, opts.modelConfig.hiddenSize, { rank: hyper.rank, eps: opts.modelConfig.normEps, seed: hyper.seed, initStd: hyper.initStd }));
    optimizer = new HarmonizerOptimizer(harmonizers, { weightDecay: hyper.weightDecay });
    let state = initialStage1State(hyper.seed, opts.modelConfig.nLayer);
    if ((opts.resume ?? true) && hasStage1State(opts.checkpointDir)) {
      state = await loadStage1State(opts.checkpointDir, fingerprint, harmonizers, optimizer, stateFormat);
      opts.logger?.info({ step: state.step }, 'resuming stage 1 from its checkpoint');
    }
    await executor.start({ hyper, layout, modelConfig: opts.modelConfig, streams, harmonizers });
    const resumedFrom = state.step;
    const maskRng = new Rng(state.rng.mask);
    const trainRng = new Rng(state.rng.train);
    const valRng = new Rng(state.rng.val);
    let scores = state.scores;
    const log = state.log;
    const schedule = warmupCosine({ warmupSteps: Math.min(hyper.warmupSteps, hyper.steps), totalSteps: hyper.steps, peakLr: hyper.lr, finalLrFraction: hyper.finalLrFraction });
    const last = Math.min(hyper.steps, opts.stopAfterStep ?? hyper.steps);
    const every = opts.checkpointEvery ?? 50;
    const progress = new Progress({ total: hyper.steps, unit: opts.unit ?? 'step', label: 'stage1', logger: opts.logger });
    if (resumedFrom > 0) progress.tick(resumedFrom);
    const middleScores = () => Object.fromEntries(layout.middle.map((i) => [String(i), scores[i]]));
    const replacedOf = (mask: number[]) => layout.middle.filter((i) => mask[i] === 0);
    const sampleMask = () => sampleGroupedMask(scores, layout.groups, maskRng, { keepFraction: hyper.keepFraction });
    const runStarted = performance.now();

    for (let step = resumedFrom; step < last; step++) {
      const t0 = performance.now();
      const lr = schedule(step);
      // Draw order is part of the format: mask, train windows, then (on update rounds) held-out windows and candidates.
      const mask = sampleMask();
      const trainStarts = windowStarts(streams.train.length, hyper.seqLen, hyper.batchSize, trainRng);
      const round: Stage1Round = { step, mask, trainStarts };
      if ((step + 1) % hyper.rlEvery === 0) {
        const valStarts = windowStarts(streams.val.length, hyper.seqLen, hyper.rlBatchSize, valRng);
        round.rollout = { valStarts, candidates: Array.from({ length: hyper.candidates }, sampleMask) };
      }
      const g = await executor.gradients(round);
      const updateStarted = performance.now();
      let gradNorm: number;
      try {
        gradNorm = applyHarmonizerUpdate(optimizer, g.grads, lr, hyper.gradClip).gradNorm;
      } finally {
        tf.dispose([...g.grads.values()]);
      }
      let updateSeconds = (performance.now() - updateStarted) / 1000;
      const entry: Stage1StepLog = { step: step + 1, loss: g.nllSum / g.tokens, align: g.alignSum / g.rows, lr, gradNorm, replaced: replacedOf(mask), scores: {}, seconds: 0 };
      if (round.rollout) {
        const { candidates } = round.rollout;
        const losses = await executor.rollouts(round);
        const rlStarted = performance.now();
        const update = reinforceUpdate(scores, candidates, losses, layout.groups, { eta: hyper.eta, clamp: hyper.scoreClamp, eps: hyper.advantageEps });
        scores = update.scores;
        entry.rollouts = { replaced: candidates.map(replacedOf), losses, advantages: update.advantages };
        updateSeconds += (performance.now() - rlStarted) / 1000;
      }
      entry.scores = middleScores();
      entry.seconds = (performance.now() - t0) / 1000;
      log.push(entry);
      const cpStarted = performance.now();
      if ((step + 1) % every === 0 || (step + 1 === last && last < hyper.steps)) {
        await saveStage1State(opts.checkpointDir, fingerprint, {
          step: step + 1,
          scores,
          rng: { mask: maskRng.state, train: trainRng.state, val: valRng.state },
          log,
          seconds: state.seconds + (performance.now() - runStarted) / 1000,
        }, harmonizers, optimizer, stateFormat);
      }
      const timing: Stage1LoopTiming = { seconds: (performance.now() - t0) / 1000, updateSeconds, checkpointSeconds: (performance.now() - cpStarted) / 1000 };
      await executor.endRound?.(round);
      opts.onStep?.(entry, timing);
      progress.tick(1, { loss: entry.loss, align: entry.align });
    }
    const seconds = state.seconds + (performance.now() - runStarted) / 1000;
    const steps = Math.max(last, resumedFrom);
    if (steps < hyper.steps) {
      return { completed: false, outDir: opts.outDir, scores, log, steps, resumedFrom, seconds: (performance.now() - started) / 1000 };
    }
    const manifest = await writeStage1Artifacts({ outDir: opts.outDir, source: opts.source, layout, hyper, hyperParameters: { ...hyper, ...opts.manifestExtras }, steps, scores, harmonizers, log, seconds });
    if (opts.removeCheckpoint) await rm(opts.checkpointDir, { recursive: true, force: true });
    return { completed: true, outDir: opts.outDir, manifest, scores, log, steps, resumedFrom, seconds: (performance.now() - started) / 1000 };
  } finally {
    await executor.close();
    optimizer?.dispose();
    for (const h of harmonizers.values()) h.dispose();
  }
}

/** Window starts as `randomWindows(stream, ctx, count, rng)` draws them (same numbers from `rng`). */
export function windowStarts(streamLength: number, ctx: number, count: number, rng: Rng): number[] {
  const starts = streamLength - ctx;
  if (starts < 1) throw new RangeError(`the stream has ${streamLength} tokens; a window needs ctx + 1 = ${ctx + 1}`);
  return Array.from({ length: count }, () => rng.uniformInt(0, starts));
}
