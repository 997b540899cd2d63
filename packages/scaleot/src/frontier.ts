import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from '@scaleot/core';
import { fiveNumberReport, type EvalOptions, type ReportPhase, type TaskInput, type TrainHyperParameters, type TrainStepInfo } from '@scaleot/offsite';
import { buildScaleotEmulator, checkFraction, type EmulatorMode } from './emulator.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';
import { readStage1, STAGE1_LOG, type BlockImportance } from './stage1Artifacts.js';
import type { Stage1StepLog } from './stage1.js';

export interface FrontierOptions {
  modelDir: string;
  stage1Dir: string;
  /** reports/<point>/ and emulators/<point>/ go here. */
  workDir: string;
  task: TaskInput;
  dataRoot?: string;
  /** Grid: every (α, β) pair. Defaults [0.25, 0.5, 0.75] × [0, 0.5]. */
  alphas?: number[];
  betas?: number[];
  /** N_a (a sandwich split evenly). Default: stage 1's adapter blocks. */
  nAdapter?: number;
  /** Default 'replace'. */
  mode?: EmulatorMode;
  /** Baselines: uniform LayerDrop (dropping `uniformDrop`; default: `emulate --method uniform`'s rule, half of the middle kept at uniform positions) and the adapter ceiling. Default true. */
  baselines?: boolean;
  uniformDrop?: number[];
  hyper?: Partial<TrainHyperParameters>;
  eval?: Pick<EvalOptions, 'batchSize' | 'maxBlocks' | 'maxExamples'>;
  /** Run the emulator privacy audit on every point (offsite's `auditEmulator`, same budget): `attacker`. Default false. */
  audit?: boolean;
  logger?: Logger;
  onPoint?: (point: FrontierPoint) => void;
  onPhase?: (label: string, phase: ReportPhase, state: 'start' | 'end', seconds?: number) => void;
  onStep?: (label: string, phase: string, info: TrainStepInfo) => void;
}

/** One emulator on the privacy–utility plane (x: emulator fine-tuned, y: plug-in). */
export interface FrontierPoint {
  label: string;
  kind: 'scaleot' | 'uniform-layerdrop' | 'ceiling';
  alpha: number | null;
  beta: number | null;
  full_zero_shot: number;
  emulator_zero_shot: number;
  emulator_fine_tuned: number;
  plug_in: number;
  /** The privacy audit's best attacker on this emulator; null without `audit`. */
  attacker: number | null;
  metric: string;
  higherIsBetter: boolean;
  /** Blocks the emulator runs (null: a report read back that does not say). */
  blocks: number | null;
  emulatorDir: string;
  seconds: number;
}

export interface FrontierResult {
  points: FrontierPoint[];
  seconds: number;
}

/**
 * Five numbers (without full fine-tuning) for every (α, β) of a grid from one stage-1 run, plus the
 * baselines: the data of `scaleot frontier`'s privacy–utility plot.
 */
export async function runFrontier(opts: FrontierOptions): Promise<FrontierResult> {
  const started = performance.now();
  const alphas = (opts.alphas ?? [0.25, 0.5, 0.75]).map((a) => checkFraction('alpha', a));
  const betas = (opts.betas ?? [0, 0.5]).map((b) => checkFraction('beta', b));
  if (alphas.length === 0 || betas.length === 0) throw new ScaleotMethodError('BAD_OPTION', 'the grid needs at least one α and one β', { where: 'frontier' });
  const stage1 = await readStage1(opts.stage1Dir);
  const nAdapter = opts.nAdapter ?? stage1.manifest.layout.nAdapter;
  // Without an explicit N_a, stage 1's own adapter blocks (a sandwich or blocks at several depths).
  const stage1Blocks = [...stage1.manifest.layout.bottom, ...stage1.manifest.layout.top];
  const placement = opts.nAdapter === undefined ? { adapterBlocks: stage1Blocks } : { nAdapter };
  const work = resolve(opts.workDir);
  const points: FrontierPoint[] = [];
  const run = async (label: string, kind: FrontierPoint['kind'], alpha: number | null, beta: number | null, emulator: { alpha: number; beta: number } | null) => {
    const t0 = performance.now();
    // 'scaleot α=0.5 β=0' → scaleot_alpha=0.5_beta=0: readable in a shell, one directory per point.
    const slug = label.replace(/α/g, 'alpha').replace(/β/g, 'beta').replace(/[^A-Za-z0-9.=-]+/g, '_');
    let emulatorDir: string | undefined;
    if (emulator) {
      emulatorDir = join(work, 'emulators', slug);
      await buildScaleotEmulator({ modelDir: opts.modelDir, stage1Dir: opts.stage1Dir, outDir: emulatorDir, ...placement, alpha: emulator.alpha, beta: emulator.beta, mode: kind === 'scaleot' ? opts.mode : 'replace', overwrite: true });
    }
    const report = await fiveNumberReport({
      modelDir: opts.modelDir,
      task: opts.task,
      dataRoot: opts.dataRoot,
      workDir: join(work, 'reports', slug),
      emulatorDir,
      adapter: opts.nAdapter === undefined ? { blocks: stage1Blocks } : { nAdapter },
      // Without uniformDrop, the uniform rule of `emulate --method uniform` (offsite's default selection).
      selection: emulator || !opts.uniformDrop ? undefined : { dropLayers: opts.uniformDrop },
      hyper: opts.hyper,
      eval: opts.eval,
      fullFineTune: false,
      audit: opts.audit ?? false,
      overwrite: true,
      logger: opts.logger,
      onPhase: (phase, state, seconds) => opts.onPhase?.(label, phase, state, seconds),
      onStep: (phase, info) => opts.onStep?.(label, phase, info),
    });
    const point: FrontierPoint = {
      label,
      kind,
      alpha,
      beta,
      full_zero_shot: report.full_zero_shot,
      emulator_zero_shot: report.emulator_zero_shot,
      emulator_fine_tuned: report.emulator_fine_tuned,
      plug_in: report.plug_in,
      attacker: report.attacker,
      metric: report.metric,
      higherIsBetter: report.higherIsBetter,
      blocks: report.emulator.blocks,
      emulatorDir: report.artifacts.emulatorDir,
      seconds: (performance.now() - t0) / 1000,
    };
    points.push(point);
    opts.onPoint?.(point);
  };
  for (const alpha of alphas) for (const beta of betas) await run(`scaleot α=${alpha} β=${beta}`, 'scaleot', alpha, beta, { alpha, beta });
  if (opts.baselines ?? true) {
    await run('uniform LayerDrop', 'uniform-layerdrop', null, null, null);
    await run('adapter ceiling', 'ceiling', 0, 0, { alpha: 0, beta: 0 });
  }
  return { points, seconds: (performance.now() - started) / 1000 };
}

/** Data of the layer-importance plot: final scores per block and their trajectories over stage 1. */
export interface LayerImportanceData {
  blocks: BlockImportance[];
  /** One entry per step: scores of the middle blocks after it. */
  trajectories: { step: number; scores: Record<string, number> }[];
  /** Per step: the mean LM loss of the training batch and of the candidate rollouts. */
  losses: { step: number; train: number; rollout: number | null }[];
}

export async function layerImportance(stage1Dir: string): Promise<LayerImportanceData> {
  const stage1 = await readStage1(stage1Dir);
  const text = await readFile(join(stage1.dir, STAGE1_LOG), 'utf8').catch((cause) => {
    throw new ScaleotMethodError('STAGE1_INVALID', `cannot read ${STAGE1_LOG}`, { where: stage1.dir, cause });
  });
  const log = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Stage1StepLog);
  return {
    blocks: stage1.importance,
    trajectories: log.map((e) => ({ step: e.step, scores: e.scores })),
    losses: log.map((e) => ({ step: e.step, train: e.loss, rollout: e.rollouts ? e.rollouts.losses.reduce((a, b) => a + b, 0) / e.rollouts.losses.length : null })),
  };
}
