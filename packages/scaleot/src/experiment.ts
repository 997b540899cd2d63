import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '@scaleot/core';
import { fiveNumberReport, type EvalOptions, type FiveNumberReport, type ReportPhase, type TaskInput, type TrainHyperParameters, type TrainStepInfo } from '@scaleot/offsite';
import { buildScaleotEmulator, type EmulatorMode } from './emulator.js';
import { runStage1, type Stage1HyperParameters, type Stage1StepLog } from './stage1.js';
import { STAGE1_MANIFEST } from './stage1Artifacts.js';

export interface ScaleotExperimentOptions {
  /** The full model (HF dir); the issue uses the tiny fixture. */
  modelDir: string;
  /** Everything goes here: stage1/, emulators/<row>/, reports/<row>/, results.json. */
  workDir: string;
  /** Data root for built-in task names. Default ./data. */
  dataRoot?: string;
  /** Downstream task. Default 'moby'. */
  task?: TaskInput;
  /** Stage-1 corpus. Default 'sotu'. */
  corpus?: TaskInput;
  /** Default 0.5. */
  alpha?: number;
  /** One ScaleOT row per β. Default [0, 0.5]. */
  betas?: number[];
  /** N_a (split evenly). Default 4 (blocks 0, 1, 10, 11 of a 12-block model). */
  nAdapter?: number;
  /** Middle blocks the uniform LayerDrop baseline drops. Default [3, 5, 7, 9]. */
  uniformDrop?: number[];
  /** Stage-1 settings (defaults: DEFAULT_STAGE1) and a document cap for the corpus. */
  stage1?: Partial<Stage1HyperParameters> & { maxDocuments?: number };
  /** Reuse these stage-1 artifacts instead of running stage 1. */
  stage1Dir?: string;
  /** Also run stage 1 with alignWeight 0 and add a "ScaleOT β=<first>, no alignment" row. Default false. */
  compareAlignment?: boolean;
  /** Also build the uniform-replace and SRC-only ablations. Default false. */
  moreAblations?: boolean;
  /** The adapter tuning budget of every row (and of full fine-tuning). Default offsite's DEFAULT_TRAIN (the issue's). */
  hyper?: Partial<TrainHyperParameters>;
  /** Evaluation settings (default: the full protocol). */
  eval?: Pick<EvalOptions, 'batchSize' | 'maxBlocks' | 'maxExamples'>;
  /** Run full fine-tuning once (its number is shared by every row). Default true. */
  fullFineTune?: boolean;
  overwrite?: boolean;
  logger?: Logger;
  onPhase?: (row: string, phase: ReportPhase | 'stage1' | 'emulate', state: 'start' | 'end', seconds?: number) => void;
  onStep?: (row: string, phase: string, info: TrainStepInfo | Stage1StepLog) => void;
}

/** One configuration's five numbers. */
export interface ExperimentRow {
  name: string;
  method: string;
  parameters: Record<string, unknown>;
  full_zero_shot: number;
  emulator_zero_shot: number;
  emulator_fine_tuned: number;
  plug_in: number;
  full_fine_tuned: number | null;
  seconds: number;
}

export interface TargetCheck {
  row: string;
  /** (uniform plug-in − row plug-in) / (uniform plug-in − ceiling plug-in); target ≥ 0.75. */
  gapClosed: number;
  /** emulator fine-tuned / plug-in; target ≥ 1.15 (perplexity). */
  finetunedOverPlugIn: number;
  /** emulator zero-shot / full zero-shot; target ≥ 1.2. */
  zeroShotRatio: number;
  met: boolean;
}

export interface ScaleotExperimentResult {
  rows: ExperimentRow[];
  targets: TargetCheck[];
  stage1Dir: string;
  /** Markdown table of the rows and the target checks. */
  markdown: string;
  seconds: number;
}

/**
 * The experiment: stage 1 once, then the five numbers of ScaleOT (α, each β), uniform
 * LayerDrop, dynamic LayerDrop and the adapter ceiling (adapters tuned on the full model: the α = 0,
 * β = 0 emulator), all with the same tuning budget; plus the target checks.
 */
export async function runScaleotExperiment(opts: ScaleotExperimentOptions): Promise<ScaleotExperimentResult> {
  const started = performance.now();
  const work = resolve(opts.workDir);
  const alpha = opts.alpha ?? 0.5;
  const betas = opts.betas ?? [0, 0.5];
  const nAdapter = opts.nAdapter ?? 4;
  const task = opts.task ?? 'moby';
  const { maxDocuments, ...stage1Hyper } = opts.stage1 ?? {};

  const stage1 = async (name: string, dir: string, extra: Partial<Stage1HyperParameters>): Promise<string> => {
    if (existsSync(join(dir, STAGE1_MANIFEST)) && !opts.overwrite) return dir;
    opts.onPhase?.(name, 'stage1', 'start');
    const t0 = performance.now();
    await runStage1({
      modelDir: opts.modelDir,
      outDir: dir,
      corpus: opts.corpus ?? 'sotu',
      dataRoot: opts.dataRoot,
      maxDocuments,
      nAdapter,
      ...stage1Hyper,
      ...extra,
      overwrite: opts.overwrite,
      logger: opts.logger,
      onStep: (e) => opts.onStep?.(name, 'stage1', e),
    });
    opts.onPhase?.(name, 'stage1', 'end', (performance.now() - t0) / 1000);
    return dir;
  };
  const stage1Dir = opts.stage1Dir ? resolve(opts.stage1Dir) : await stage1('stage1', join(work, 'stage1'), {});

  interface Plan {
    name: string;
    emulator?: { alpha: number; beta: number; mode: EmulatorMode; stage1Dir?: string };
  }
  const plans: Plan[] = betas.map((beta) => ({ name: `ScaleOT α=${alpha} β=${beta}`, emulator: { alpha, beta, mode: 'replace' as const } }));
  if (opts.compareAlignment) {
    const noAlign = await stage1('stage1-no-align', join(work, 'stage1-no-align'), { alignWeight: 0 });
    plans.push({ name: `ScaleOT α=${alpha} β=${betas[0]} (stage 1 without alignment)`, emulator: { alpha, beta: betas[0], mode: 'replace', stage1Dir: noAlign } });
  }
  plans.push({ name: 'uniform LayerDrop' });
  plans.push({ name: `dynamic LayerDrop α=${alpha}`, emulator: { alpha, beta: 0, mode: 'drop' } });
  if (opts.moreAblations) {
    plans.push({ name: `uniform replace α=${alpha}`, emulator: { alpha, beta: 0, mode: 'uniform-replace' } });
    plans.push({ name: `SRC only β=${betas[betas.length - 1]}`, emulator: { alpha: 0, beta: betas[betas.length - 1], mode: 'replace' } });
  }
  plans.push({ name: 'adapter ceiling', emulator: { alpha: 0, beta: 0, mode: 'replace' } });

  const rows: ExperimentRow[] = [];
  let fullFineTuned: number | null = null;
  for (const [k, plan] of plans.entries()) {
    const slug = `${k}-${plan.name.replace(/[^A-Za-z0-9.=-]+/g, '_')}`;
    const t0 = performance.now();
    let emulatorDir: string | undefined;
    if (plan.emulator) {
      emulatorDir = join(work, 'emulators', slug);
      opts.onPhase?.(plan.name, 'emulate', 'start');
      await buildScaleotEmulator({ modelDir: opts.modelDir, stage1Dir: plan.emulator.stage1Dir ?? stage1Dir, outDir: emulatorDir, nAdapter, alpha: plan.emulator.alpha, beta: plan.emulator.beta, mode: plan.emulator.mode, overwrite: true });
      opts.onPhase?.(plan.name, 'emulate', 'end', (performance.now() - t0) / 1000);
    }
    const runFull = (opts.fullFineTune ?? true) && fullFineTuned === null;
    const report: FiveNumberReport = await fiveNumberReport({
      modelDir: opts.modelDir,
      task,
      dataRoot: opts.dataRoot,
      workDir: join(work, 'reports', slug),
      emulatorDir,
      adapter: { nAdapter },
      selection: plan.emulator ? undefined : { dropLayers: opts.uniformDrop ?? [3, 5, 7, 9] },
      hyper: opts.hyper,
      eval: opts.eval,
      fullFineTune: runFull,
      overwrite: true,
      logger: opts.logger,
      onPhase: (phase, state, seconds) => opts.onPhase?.(plan.name, phase, state, seconds),
      onStep: (phase, info) => opts.onStep?.(plan.name, phase, info),
    });
    if (runFull) fullFineTuned = report.full_fine_tuned;
    rows.push({
      name: plan.name,
      method: report.emulator.method,
      parameters: report.emulator.parameters,
      full_zero_shot: report.full_zero_shot,
      emulator_zero_shot: report.emulator_zero_shot,
      emulator_fine_tuned: report.emulator_fine_tuned,
      plug_in: report.plug_in,
      full_fine_tuned: fullFineTuned,
      seconds: (performance.now() - t0) / 1000,
    });
  }
  for (const r of rows) r.full_fine_tuned = fullFineTuned;
  const targets = targetChecks(rows);
  return { rows, targets, stage1Dir, markdown: experimentMarkdown(rows, targets), seconds: (performance.now() - started) / 1000 };
}

/** The targets for every ScaleOT row, against the uniform LayerDrop and ceiling rows. */
export function targetChecks(rows: readonly ExperimentRow[]): TargetCheck[] {
  const uniform = rows.find((r) => r.name === 'uniform LayerDrop');
  const ceiling = rows.find((r) => r.name === 'adapter ceiling');
  if (!uniform || !ceiling) return [];
  return rows
    .filter((r) => r.name.startsWith('ScaleOT'))
    .map((r) => {
      const gapClosed = (uniform.plug_in - r.plug_in) / (uniform.plug_in - ceiling.plug_in);
      const finetunedOverPlugIn = r.emulator_fine_tuned / r.plug_in;
      const zeroShotRatio = r.emulator_zero_shot / r.full_zero_shot;
      return { row: r.name, gapClosed, finetunedOverPlugIn, zeroShotRatio, met: gapClosed >= 0.75 && finetunedOverPlugIn >= 1.15 && zeroShotRatio >= 1.2 };
    });
}

export function experimentMarkdown(rows: readonly ExperimentRow[], targets: readonly TargetCheck[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(2));
  const lines = [
    '| emulator | full zero-shot | emulator zero-shot | emulator fine-tuned | plug-in | full fine-tuning |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${f(r.full_zero_shot)} | ${f(r.emulator_zero_shot)} | ${f(r.emulator_fine_tuned)} | ${f(r.plug_in)} | ${f(r.full_fine_tuned)} |`),
    '',
  ];
  if (targets.length > 0) {
    lines.push('| ScaleOT row | gap closed (≥ 0.75) | emu-FT / plug-in (≥ 1.15) | emu-ZS / full-ZS (≥ 1.2) | met |', '|---|---:|---:|---:|---|');
    for (const t of targets) lines.push(`| ${t.row} | ${t.gapClosed.toFixed(2)} | ${t.finetunedOverPlugIn.toFixed(2)} | ${t.zeroShotRatio.toFixed(2)} | ${t.met ? 'yes' : 'no'} |`);
  }
  return `${lines.join('\n')}\n`;
}
