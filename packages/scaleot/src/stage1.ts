import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { encodeSafetensors, SafetensorsFile, type WriteTensor } from '@scaleot/checkpoint';
import type { Logger } from '@scaleot/core';
import { createRng, lmDocuments, lmStream, taskRows } from '@scaleot/data';
import { loadModel, type ModelConfig } from '@scaleot/model';
import { adapterLayout, resolveTask, sourceModelInfo, writeArtifactDir, type SourceModelInfo, type TaskInput } from '@scaleot/offsite';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { HARMONIZER_KIND, type Harmonizer } from './Harmonizer.js';
import type { HarmonizerOptimizer } from './harmonizerStep.js';
import { middleGroups, middleSegments, REINFORCE_DEFAULTS } from './importance.js';
import { LocalStage1Executor } from './LocalStage1Executor.js';
import { stage1Loop } from './stage1Loop.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';
import {
  importanceTable,
  STAGE1_FORMAT,
  STAGE1_HARMONIZERS,
  STAGE1_LOG,
  STAGE1_MANIFEST,
  STAGE1_SCORES,
  STAGE1_VERSION,
  type Stage1Layout,
  type Stage1Manifest,
} from './stage1Artifacts.js';

/** Every setting of a stage-1 run (what the manifest records and a resume must match). */
export interface Stage1HyperParameters {
  /** N_a adapter blocks (always raw). Default 4. */
  nAdapter: number;
  /** Adapter blocks at the bottom. Default floor(nAdapter / 2). */
  bottom: number;
  /**
   * Explicit adapter blocks at any depths (CRaSh-style, e.g. [0, 4, 7, 11]) instead of the sandwich;
   * nAdapter and bottom then follow from the list. Groups never straddle an adapter block. Default: none.
   */
  adapterBlocks?: number[];
  /** N_g consecutive middle blocks per group. Default 4. */
  groupSize: number;
  /** Fraction of each group kept raw in a sampled mask. Default 0.5. */
  keepFraction: number;
  /** Harmonizer rank. Default d/2. */
  rank: number;
  /** Std of the harmonizers' W_down init. Default 0.02. */
  initStd: number;
  /** Harmonizer optimizer steps. Default 300. */
  steps: number;
  /** Windows per step. Default 16. */
  batchSize: number;
  /** Windows per forward/backward pass. Default 4. */
  microBatchSize: number;
  /** Tokens the model reads per window (windows hold seqLen + 1). Default n_positions. */
  seqLen: number;
  /** AdamW peak learning rate of the harmonizers. Default 1e-3. */
  lr: number;
  /** Default 20. */
  warmupSteps: number;
  /** Cosine floor as a fraction of lr. Default 0.1. */
  finalLrFraction: number;
  /** Global gradient-norm clip. Default 1.0. */
  gradClip: number;
  /** AdamW decoupled weight decay on harmonizer matrices. Default 0. */
  weightDecay: number;
  /** Importance update every this many steps. Default 1. */
  rlEvery: number;
  /** N_c candidate masks per importance update. Default 3. */
  candidates: number;
  /** Windows of the held-out batch each candidate is scored on. Default 8. */
  rlBatchSize: number;
  /** η, the scores' step size. Default 0.05 (REINFORCE_DEFAULTS: why). */
  eta: number;
  /** Scores clamp to [−scoreClamp, scoreClamp]. Default 6. */
  scoreClamp: number;
  /** ε of the advantage. Default 1e-8. */
  advantageEps: number;
  /** Weight of the harmonizer-alignment term (relative MSE to the replaced block's output); 0 = off. Default 1. */
  alignWeight: number;
  /** Seeds masks, data windows and harmonizer init. Default 0. */
  seed: number;
}

export const DEFAULT_STAGE1: Omit<Stage1HyperParameters, 'rank' | 'seqLen' | 'bottom'> = {
  nAdapter: 4,
  groupSize: 4,
  keepFraction: 0.5,
  initStd: 0.02,
  steps: 300,
  batchSize: 16,
  microBatchSize: 4,
  lr: 1e-3,
  warmupSteps: 20,
  finalLrFraction: 0.1,
  gradClip: 1.0,
  weightDecay: 0,
  rlEvery: 1,
  candidates: 3,
  rlBatchSize: 8,
  eta: REINFORCE_DEFAULTS.eta,
  scoreClamp: REINFORCE_DEFAULTS.clamp,
  advantageEps: REINFORCE_DEFAULTS.eps,
  alignWeight: 1,
  seed: 0,
};

/** One step of the training log (a line of stage1-log.jsonl). */
export interface Stage1StepLog {
  step: number;
  /** Mean LM loss (nats/token) of the step's batch under its mask, before the update. */
  loss: number;
  /** Mean alignment term (0 when off). */
  align: number;
  lr: number;
  gradNorm: number;
  /** Middle blocks routed through their harmonizer this step. */
  replaced: number[];
  /** The importance update, when one ran this step. */
  rollouts?: { replaced: number[][]; losses: number[]; advantages: number[] };
  /** Scores of the middle blocks after the step, `{ "<index>": s }`. */
  scores: Record<string, number>;
  seconds: number;
}

export interface Stage1Options extends Partial<Stage1HyperParameters> {
  /** The full model (HF dir). */
  modelDir: string;
  /** Artifact directory: manifest.json, scores.json, harmonizers.safetensors, stage1-log.jsonl. */
  outDir: string;
  /** The owner's corpus: an LM task; trains on its train split, scores candidates on its test split. Default 'sotu'. */
  corpus?: TaskInput;
  /** Data root for built-in names. Default ./data. */
  dataRoot?: string;
  /** Use only the first N documents of each split. Default: all. */
  maxDocuments?: number;
  /** Pre-tokenised streams instead of `corpus` (tests, coordinators). */
  streams?: { train: Int32Array; val: Int32Array };
  /** Resumable state. Default `<outDir>/checkpoint` (replaced by the artifacts when the run completes). */
  checkpointDir?: string;
  /** Checkpoint every N steps (and at a stop). Default 50. */
  checkpointEvery?: number;
  /** Continue from the checkpoint when there is one. Default true. */
  resume?: boolean;
  /** End the call after this step (a job slice); the checkpoint holds the state. Default: run to `steps`. */
  stopAfterStep?: number;
  /** Replace a completed stage-1 directory. Default false. */
  overwrite?: boolean;
  onStep?: (entry: Stage1StepLog) => void;
  logger?: Logger;
}

export interface Stage1Result {
  /** False when stopAfterStep ended the call early. */
  completed: boolean;
  outDir: string;
  manifest?: Stage1Manifest;
  /** By original block index (0 for adapter blocks). */
  scores: number[];
  /** The whole log (resumed steps included). */
  log: Stage1StepLog[];
  steps: number;
  resumedFrom: number;
  seconds: number;
}

const STATE_JSON = 'state.json';
const STATE_TENSORS = 'state.safetensors';

/** Everything a resumed stage-1 run needs to continue bit-identically after `step` completed steps. */
export interface Stage1State {
  step: number;
  scores: number[];
  rng: { mask: number[]; train: number[]; val: number[] };
  log: Stage1StepLog[];
  seconds: number;
}

/**
 * The state of a stage-1 run before its first step: zero scores and the mask, training-window and
 * held-out-window RNG streams forked from the seed (the single-process and distributed runs must
 * start from the same state to give the same result).
 */
export function initialStage1State(seed: number, nLayer: number): Stage1State {
  const root = createRng(seed);
  return {
    step: 0,
    scores: new Array<number>(nLayer).fill(0),
    rng: { mask: root.fork().state, train: root.fork().state, val: root.fork().state },
    log: [],
    seconds: 0,
  };
}

/** How one kind of stage-1 checkpoint is tagged on disk and which errors a bad one raises. */
export interface Stage1StateFormat {
  /** The `format` field of state.json. */
  format: string;
  /** The error for an unusable checkpoint: `mismatch` when another run wrote it, `bad` when it is unreadable, foreign or incomplete. */
  error: (problem: 'bad' | 'mismatch', message: string, options: { where: string; cause?: unknown }) => Error;
  /** The option a mismatching run can change instead (named in the mismatch message), e.g. 'checkpointDir'. */
  elsewhere: string;
}

/** The checkpoint runStage1 writes (ScaleotMethodError BAD_STAGE1_STATE / STAGE1_STATE_MISMATCH). */
export const STAGE1_STATE: Stage1StateFormat = {
  format: 'scaleot.stage1-state',
  error: (problem, message, options) => new ScaleotMethodError(problem === 'bad' ? 'BAD_STAGE1_STATE' : 'STAGE1_STATE_MISMATCH', message, options),
  elsewhere: 'checkpointDir',
};

/** Resolves defaults and checks every setting against the model; throws ScaleotMethodError. */
export function resolveStage1Hyper(opts: Partial<Stage1HyperParameters>, model: Pick<ModelConfig, 'nLayer' | 'hiddenSize' | 'maxPositions'>): { hyper: Stage1HyperParameters; layout: Stage1Layout } {
  const explicit = opts.adapterBlocks ? stage1Layout(model.nLayer, opts.adapterBlocks.length, undefined, opts.groupSize ?? DEFAULT_STAGE1.groupSize, opts.adapterBlocks) : undefined;
  if (explicit && opts.nAdapter !== undefined && opts.nAdapter !== explicit.nAdapter) {
    throw new ScaleotMethodError('BAD_OPTION', `nAdapter ${opts.nAdapter} disagrees with the ${explicit.nAdapter} adapterBlocks listed; give one of them`, { where: 'stage1 options.nAdapter' });
  }
  const nAdapter = explicit?.nAdapter ?? opts.nAdapter ?? DEFAULT_STAGE1.nAdapter;
  const hyper: Stage1HyperParameters = {
    ...DEFAULT_STAGE1,
    ...pickHyper(opts),
    nAdapter,
    bottom: explicit?.bottom.length ?? opts.bottom ?? Math.floor(nAdapter / 2),
    rank: opts.rank ?? Math.max(1, Math.floor(model.hiddenSize / 2)),
    seqLen: opts.seqLen ?? model.maxPositions,
  } as Stage1HyperParameters;
  const where = 'stage1 options';
  const bad = (field: string, want: string): never => {
    throw new ScaleotMethodError('BAD_OPTION', `${field} must be ${want}, got ${JSON.stringify((hyper as unknown as Record<string, unknown>)[field])}`, { where: `${where}.${field}` });
  };
  const posInt = (f: keyof Stage1HyperParameters) => (Number.isInteger(hyper[f]) && (hyper[f] as number) >= 1) || bad(f, 'a positive integer');
  const nonNeg = (f: keyof Stage1HyperParameters) => (Number.isFinite(hyper[f]) && (hyper[f] as number) >= 0) || bad(f, 'a finite number ≥ 0');
  (['groupSize', 'rank', 'steps', 'batchSize', 'microBatchSize', 'seqLen', 'rlEvery', 'rlBatchSize'] as const).forEach(posInt);
  (['lr', 'warmupSteps', 'finalLrFraction', 'gradClip', 'weightDecay', 'eta', 'advantageEps', 'alignWeight', 'initStd'] as const).forEach(nonNeg);
  if (!Number.isInteger(hyper.candidates) || hyper.candidates < 2) bad('candidates', 'an integer ≥ 2 (the advantage needs a spread)');
  if (!(hyper.keepFraction > 0 && hyper.keepFraction < 1)) bad('keepFraction', 'in (0, 1)');
  if (!(hyper.scoreClamp > 0)) bad('scoreClamp', '> 0');
  if (!Number.isSafeInteger(hyper.seed)) bad('seed', 'a safe integer');
  if (hyper.seqLen > model.maxPositions) bad('seqLen', `at most the model's context = ${model.maxPositions}`);
  const layout = stage1Layout(model.nLayer, hyper.nAdapter, hyper.bottom, hyper.groupSize, hyper.adapterBlocks);
  return { hyper, layout };
}

/**
 * The adapter blocks and middle groups; throws NO_MIDDLE_BLOCKS / ADAPTER_TOO_LARGE on impossible layouts.
 * A sandwich by default (`bottom` blocks at the bottom, the rest at the top); with `blocks`, those adapter
 * blocks at any depths (nAdapter and bottom are then ignored): `bottom` lists the adapter blocks 0…b−1
 * below the first middle block, `top` the others, and the groups of `groupSize` are cut inside each
 * run of consecutive middle blocks, so no group straddles an adapter block.
 */
export function stage1Layout(nLayer: number, nAdapter: number, bottom = Math.floor(nAdapter / 2), groupSize = 4, blocks?: readonly number[]): Stage1Layout {
  const where = 'adapter layout';
  if (blocks !== undefined) {
    let layout: { bottom: number[]; top: number[]; middle: number[] };
    try {
      layout = adapterLayout(nLayer, { blocks });
    } catch (cause) {
      const code = (cause as { code?: string }).code === 'ADAPTER_TOO_LARGE' ? 'NO_MIDDLE_BLOCKS' : 'BAD_OPTION';
      throw new ScaleotMethodError(code, (cause as Error).message, { where, cause });
    }
    const groups = middleSegments(layout.middle).flatMap((segment) => middleGroups(segment, groupSize));
    return { nLayer, nAdapter: layout.bottom.length + layout.top.length, bottom: layout.bottom, top: layout.top, middle: layout.middle, groups };
  }
  if (!Number.isInteger(nAdapter) || nAdapter < 0) throw new ScaleotMethodError('BAD_OPTION', `N_a must be an integer ≥ 0, got ${nAdapter}`, { where });
  if (!Number.isInteger(bottom) || bottom < 0 || bottom > nAdapter) throw new ScaleotMethodError('BAD_OPTION', `the bottom split must be an integer in [0, N_a=${nAdapter}], got ${bottom}`, { where });
  if (nAdapter >= nLayer) {
    throw new ScaleotMethodError('NO_MIDDLE_BLOCKS', `N_a=${nAdapter} adapter blocks leave no middle block in a ${nLayer}-block model; choose N_a ≤ ${nLayer - 1}`, { where });
  }
  const top = nAdapter - bottom;
  const middle: number[] = [];
  for (let i = bottom; i < nLayer - top; i++) middle.push(i);
  const bottomList = Array.from({ length: bottom }, (_, i) => i);
  const topList = Array.from({ length: top }, (_, i) => nLayer - top + i);
  return { nLayer, nAdapter, bottom: bottomList, top: topList, middle, groups: middleGroups(middle, groupSize) };
}

/**
 * ScaleOT stage 1 (Dynamic LayerReplace) on one process: trains one harmonizer per middle block with
 * the LM loss under grouped masks sampled from the importance scores, and updates the scores from
 * candidate rollouts on a held-out batch. Deterministic for a seed; checkpoints every N steps; a resumed
 * run continues bit-identically. Writes the artifact directory atomically when the run completes.
 */
export async function runStage1(opts: Stage1Options): Promise<Stage1Result> {
  const started = performance.now();
  const outDir = resolve(opts.outDir);
  const checkpointDir = resolve(opts.checkpointDir ?? join(outDir, 'checkpoint'));
  const insideOut = checkpointDir.startsWith(`${outDir}/`);
  if (existsSync(join(outDir, STAGE1_MANIFEST)) && !opts.overwrite) {
    throw new ScaleotMethodError('OUTPUT_EXISTS', 'this directory holds a completed stage-1 run; choose another outDir or pass overwrite', { where: outDir });
  }
  if (existsSync(outDir) && !opts.overwrite) {
    const foreign = (await readdir(outDir)).filter((f) => !(insideOut && join(outDir, f) === checkpointDir));
    if (foreign.length > 0) throw new ScaleotMethodError('OUTPUT_EXISTS', `output directory holds other files (${foreign.slice(0, 3).join(', ')}); choose an empty directory or pass overwrite`, { where: outDir });
  }
  const source = await sourceModelInfo(resolve(opts.modelDir));
  const model = await loadModel(opts.modelDir, { trainable: false });
  let executor: LocalStage1Executor | undefined;
  try {
    const config = model.config;
    const { hyper, layout } = resolveStage1Hyper(opts, config);
    if (model.blocks.some((b, i) => b.sourceIndex !== i)) {
      throw new ScaleotMethodError('BAD_MODEL', 'stage 1 needs the full model with its blocks in original order', { where: opts.modelDir });
    }
    const streams = await stage1Streams(opts, opts.modelDir, hyper.seqLen);
    executor = new LocalStage1Executor(model);
    const result = await stage1Loop(executor, {
      hyper, layout, modelConfig: config, source, streams, outDir, checkpointDir,
      resume: opts.resume, checkpointEvery: opts.checkpointEvery, stopAfterStep: opts.stopAfterStep,
      removeCheckpoint: !insideOut, onStep: opts.onStep ? (entry) => opts.onStep!(entry) : undefined, logger: opts.logger,
    });
    return { ...result, seconds: (performance.now() - started) / 1000 };
  } finally {
    // The executor disposes the model it was given; before it exists, this does.
    if (!executor) model.dispose();
  }
}

/** A stage-1 run's token streams (given, or the corpus tokenised), each checked to hold a window of seqLen + 1 tokens. */
export async function stage1Streams(opts: Pick<Stage1Options, 'streams' | 'corpus' | 'dataRoot' | 'maxDocuments'>, modelDir: string, seqLen: number): Promise<{ train: Int32Array; val: Int32Array }> {
  const streams = opts.streams ?? (await corpusStreams(opts.corpus ?? 'sotu', opts.dataRoot, modelDir, opts.maxDocuments));
  for (const [name, s] of Object.entries(streams)) {
    if (s.length < seqLen + 2) throw new ScaleotMethodError('EMPTY_DATASET', `the ${name} stream has ${s.length} tokens; a window needs seqLen + 1 = ${seqLen + 1}`, { where: 'stage1 corpus' });
  }
  return streams;
}

export interface Stage1ArtifactsInput {
  outDir: string;
  source: SourceModelInfo;
  layout: Stage1Layout;
  hyper: Stage1HyperParameters;
  /** What the manifest records as the run's settings (the hyper-parameters, plus whatever describes the run). */
  hyperParameters: Record<string, unknown>;
  steps: number;
  /** By original block index. */
  scores: number[];
  harmonizers: ReadonlyMap<number, Harmonizer>;
  log: Stage1StepLog[];
  seconds: number;
}

/** Writes a completed run's artifact directory atomically (manifest, scores, harmonizers, log); returns the manifest. */
export async function writeStage1Artifacts(a: Stage1ArtifactsInput): Promise<Stage1Manifest> {
  const { source, layout, scores } = a;
  const manifest: Stage1Manifest = {
    format: STAGE1_FORMAT,
    version: STAGE1_VERSION,
    sourceModel: source,
    layout,
    harmonizer: { kind: HARMONIZER_KIND, rank: a.hyper.rank, blocks: layout.middle },
    hyperParameters: a.hyperParameters,
    steps: a.steps,
    scores: Object.fromEntries(layout.middle.map((i) => [String(i), scores[i]])),
    seconds: a.seconds,
    createdAt: new Date().toISOString(),
  };
  const tensors: WriteTensor[] = [];
  for (const h of a.harmonizers.values()) for (const [name, v] of h.namedVariables()) tensors.push({ name, dtype: 'F32', shape: v.shape.slice(), data: (await v.data()) as Float32Array });
  await writeArtifactDir(
    a.outDir,
    [
      { name: STAGE1_SCORES, chunks: [Buffer.from(`${JSON.stringify({ format: 'scaleot.scores', sourceModel: source.sha256, groups: layout.groups, blocks: importanceTable(scores, layout) }, null, 2)}\n`)] },
      { name: STAGE1_HARMONIZERS, chunks: encodeSafetensors(tensors, { format: 'pt', scaleot: 'stage1-harmonizers' }, STAGE1_HARMONIZERS) },
      { name: STAGE1_LOG, chunks: [Buffer.from(a.log.map((e) => JSON.stringify(e)).join('\n') + '\n')] },
      { name: STAGE1_MANIFEST, chunks: [Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)] },
    ],
    { overwrite: true },
  );
  return manifest;
}

/** The train and held-out token streams of an LM corpus (train split / test split). */
export async function corpusStreams(corpus: TaskInput, dataRoot: string | undefined, tokenizerDir: string, maxDocuments?: number): Promise<{ train: Int32Array; val: Int32Array }> {
  const task = await resolveTask(corpus, dataRoot);
  if (task.spec.type !== 'lm') throw new ScaleotMethodError('BAD_CORPUS', `stage 1 trains on a language-modelling corpus; "${task.spec.name}" is a ${task.spec.type} task`, { where: task.specFile });
  const tokenizer = await Tokenizer.fromDir(tokenizerDir);
  const spec = task.spec;
  const docs = (split: 'train' | 'test') => {
    const rows = taskRows(task, split);
    return lmDocuments(maxDocuments === undefined ? rows : rows.slice(0, maxDocuments), spec);
  };
  return { train: lmStream(docs('train'), tokenizer), val: lmStream(docs('test'), tokenizer) };
}

export function hasStage1State(dir: string): boolean {
  return existsSync(join(dir, STATE_JSON));
}

/** Writes the whole checkpoint directory atomically (a crash leaves the previous one). */
export async function saveStage1State(
  dir: string,
  fingerprint: unknown,
  state: Stage1State,
  harmonizers: ReadonlyMap<number, Harmonizer>,
  optimizer: HarmonizerOptimizer,
  stateFormat: Stage1StateFormat = STAGE1_STATE,
): Promise<void> {
  const tensors: WriteTensor[] = [];
  const optimizerSteps: Record<string, number> = {};
  for (const [i, h] of harmonizers) {
    const st = optimizer.optimizers.get(i)!.getState();
    optimizerSteps[String(i)] = st.step;
    for (const [name, v] of h.namedVariables()) {
      tensors.push({ name: `param/${name}`, dtype: 'F32', shape: v.shape.slice(), data: (await v.data()) as Float32Array });
      tensors.push({ name: `adam.m/${name}`, dtype: 'F32', shape: v.shape.slice(), data: st.m[name] });
      tensors.push({ name: `adam.v/${name}`, dtype: 'F32', shape: v.shape.slice(), data: st.v[name] });
    }
  }
  // JSON keeps float64 scores exactly (shortest round-trip representation).
  const json = { format: stateFormat.format, version: 1, fingerprint, ...state, optimizerSteps, savedAt: new Date().toISOString() };
  await writeArtifactDir(
    dir,
    [
      { name: STATE_JSON, chunks: [Buffer.from(`${JSON.stringify(json)}\n`)] },
      { name: STATE_TENSORS, chunks: encodeSafetensors(tensors, undefined, STATE_TENSORS) },
    ],
    { overwrite: true },
  );
}

/** Restores harmonizers and optimizer moments in place; returns the saved loop state. */
export async function loadStage1State(
  dir: string,
  fingerprint: unknown,
  harmonizers: ReadonlyMap<number, Harmonizer>,
  optimizer: HarmonizerOptimizer,
  stateFormat: Stage1StateFormat = STAGE1_STATE,
): Promise<Stage1State> {
  const path = join(dir, STATE_JSON);
  let json: Stage1State & { format?: string; version?: number; fingerprint: unknown; optimizerSteps: Record<string, number> };
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw stateFormat.error('bad', 'the stage-1 checkpoint is unreadable; delete it to start over', { where: path, cause });
  }
  if (json.format !== stateFormat.format || json.version !== 1) {
    throw stateFormat.error('bad', `not a version-1 ${stateFormat.format} checkpoint (format ${json.format}, version ${json.version})`, { where: path });
  }
  if (JSON.stringify(json.fingerprint) !== JSON.stringify(fingerprint)) {
    throw stateFormat.error('mismatch', `the checkpoint was written by a run with another model, corpus or settings; use the same ones, another ${stateFormat.elsewhere}, or resume: false`, { where: path });
  }
  const tensors = await SafetensorsFile.readAllFloat32(join(dir, STATE_TENSORS));
  for (const [i, h] of harmonizers) {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, variable] of h.namedVariables()) {
      const p = tensors.get(`param/${name}`);
      const mm = tensors.get(`adam.m/${name}`);
      const vv = tensors.get(`adam.v/${name}`);
      if (!p || !mm || !vv) throw stateFormat.error('bad', `the checkpoint lacks "${name}"`, { where: dir });
      tf.tidy(() => variable.assign(tf.tensor(p.data, variable.shape, 'float32')));
      m[name] = mm.data;
      v[name] = vv.data;
    }
    optimizer.optimizers.get(i)!.setState({ step: json.optimizerSteps[String(i)] ?? 0, m, v });
  }
  return { step: json.step, scores: json.scores, rng: json.rng, log: json.log, seconds: json.seconds };
}

const HYPER_KEYS: readonly (keyof Stage1HyperParameters)[] = [
  'nAdapter', 'bottom', 'adapterBlocks', 'groupSize', 'keepFraction', 'rank', 'initStd', 'steps', 'batchSize', 'microBatchSize', 'seqLen', 'lr', 'warmupSteps',
  'finalLrFraction', 'gradClip', 'weightDecay', 'rlEvery', 'candidates', 'rlBatchSize', 'eta', 'scoreClamp', 'advantageEps', 'alignWeight', 'seed',
];

/** The hyper-parameter fields of an options object (other fields and undefined values dropped). */
function pickHyper(o: Partial<Stage1HyperParameters>): Partial<Stage1HyperParameters> {
  const out: Record<string, unknown> = {};
  for (const k of HYPER_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out as Partial<Stage1HyperParameters>;
}
