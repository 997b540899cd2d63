import { join, resolve } from 'node:path';
import type { Logger } from '@scaleot/core';
import { PROTOCOL_VERSION } from '@scaleot/data';
import { loadModel } from '@scaleot/model';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { saveAdapter } from './adapterArtifact.js';
import { loadEmulator } from './emulator.js';
import { evaluateModel, taskMetric, type EvalOptions, type Metric } from './evaluate.js';
import { fullFineTuneInMemory } from './fullFineTune.js';
import type { AdapterLayoutOptions, LayerSelection } from './layout.js';
import type { LoraSpec } from './manifest.js';
import { plugIn } from './plugIn.js';
import { resolveTask, type TaskInput } from './taskInput.js';
import { auditEmulator, type AttackerName, type EmulatorAuditResult } from './audit.js';
import { DEFAULT_TRAIN, type TrainHyperParameters, type TrainStepInfo } from './trainLoop.js';
import { adapterWeights, tuneAdapterInMemory } from './tuneAdapter.js';
import { createUniformEmulator, type DistillSettings } from './uniformEmulator.js';

export type ReportPhase = 'full_zero_shot' | 'emulate' | 'emulator_zero_shot' | 'tune' | 'emulator_fine_tuned' | 'plugin' | 'plug_in' | 'audit' | 'full_fine_tune' | 'full_fine_tuned';

export interface FiveNumberReportOptions {
  /** The full model (HF dir). */
  modelDir: string;
  task: TaskInput;
  /** Data root for built-in task names. Default ./data. */
  dataRoot?: string;
  /** Artifacts go to `<workDir>/emulator`, `/adapter`, `/plugged`. */
  workDir: string;
  /** Use this emulator (e.g. a ScaleOT one) instead of building a uniform LayerDrop emulator. */
  emulatorDir?: string;
  /** Uniform emulator: adapter sandwich (default N_a = 4, even split). */
  adapter?: AdapterLayoutOptions;
  /** Uniform emulator: which middle blocks stay (default: half, uniform rule). */
  selection?: LayerSelection;
  /** Uniform emulator: distillation (default off). */
  distill?: DistillSettings;
  /** Training settings of both adapter tuning and full fine-tuning (same budget). Defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
  /** LoRA in the adapter blocks (default none). */
  lora?: LoraSpec | null;
  /** Evaluation settings (default: the full protocol, batch 8). */
  eval?: Pick<EvalOptions, 'batchSize' | 'maxBlocks' | 'maxExamples'>;
  /** Run the full fine-tuning baseline (the most expensive step). Default true. */
  fullFineTune?: boolean;
  /**
   * Run the emulator privacy audit (`auditEmulator`) after the plug-in, with the same tuning budget and
   * evaluation, the tuned adapter and the full model: reported as `attacker`. Default false.
   */
  audit?: boolean | { attackers?: AttackerName[] };
  /** Replace earlier artifacts in workDir. Default false. */
  overwrite?: boolean;
  logger?: Logger;
  onPhase?: (phase: ReportPhase, state: 'start' | 'end', seconds?: number) => void;
  onStep?: (phase: 'tune' | 'full_fine_tune' | 'emulate' | 'audit', info: TrainStepInfo) => void;
}

export interface FiveNumberReport {
  full_zero_shot: number;
  emulator_zero_shot: number;
  emulator_fine_tuned: number;
  plug_in: number;
  /** null when the baseline was skipped. */
  full_fine_tuned: number | null;
  /** The privacy audit's best attacker (see `auditEmulator`); null when the audit was not run. */
  attacker: number | null;
  /** The audit's value per attacker; null when the audit was not run. */
  attackers: Partial<Record<AttackerName, number>> | null;
  task: string;
  taskType: 'lm' | 'classification';
  metric: Metric;
  higherIsBetter: boolean;
  protocolVersion: number;
  /** Every setting that shaped the numbers. */
  hyperParameters: {
    train: TrainHyperParameters;
    lora: LoraSpec | null;
    eval: { batchSize: number; maxBlocks: number | null; maxExamples: number | null };
    fullFineTune: boolean;
    /** The attackers the audit ran (same train and eval settings); null when not run. */
    audit: AttackerName[] | null;
  };
  emulator: {
    method: string;
    parameters: Record<string, unknown>;
    layerMap: unknown[];
    adapter: unknown;
    compression: Record<string, unknown>;
    sourceModel: unknown;
    /** Blocks the emulator runs (adapters + kept/replaced middle). */
    blocks: number;
  };
  artifacts: { modelDir: string; emulatorDir: string; adapterDir: string; pluggedDir: string };
  /** Seconds per phase and in all. */
  timings: Partial<Record<ReportPhase, number>> & { total: number };
  createdAt: string;
}

/**
 * The five numbers of one task (full zero-shot, emulator zero-shot, emulator fine-tuned, plug-in, full
 * fine-tuning), each step reusing the path-level building blocks and leaving its artifact in workDir.
 */
export async function fiveNumberReport(opts: FiveNumberReportOptions): Promise<FiveNumberReport> {
  const started = performance.now();
  const timings: Partial<Record<ReportPhase, number>> = {};
  const phase = async <T>(name: ReportPhase, fn: () => Promise<T>): Promise<T> => {
    opts.onPhase?.(name, 'start');
    opts.logger?.info({ phase: name }, `report: ${name}`);
    const t0 = performance.now();
    const out = await fn();
    timings[name] = (performance.now() - t0) / 1000;
    // Evaluations end with their number: a long report shows each one as soon as it is known.
    const value = (out as { value?: unknown } | undefined)?.value;
    if (typeof value === 'number') opts.logger?.info({ phase: name, value }, `report: ${name} = ${value}`);
    opts.onPhase?.(name, 'end', timings[name]);
    return out;
  };
  const task = await resolveTask(opts.task, opts.dataRoot);
  const tokenizer = await Tokenizer.fromDir(opts.modelDir);
  const hyper = { ...DEFAULT_TRAIN, ...opts.hyper };
  const evalOpts: EvalOptions = { ...opts.eval, logger: opts.logger };
  const work = resolve(opts.workDir);
  const emulatorDir = opts.emulatorDir ?? join(work, 'emulator');
  const adapterDir = join(work, 'adapter');
  const pluggedDir = join(work, 'plugged');
  const runFull = opts.fullFineTune ?? true;

  const full = await loadModel(opts.modelDir);
  let fullZeroShot: number;
  let fullFineTuned: number | null = null;
  try {
    fullZeroShot = (await phase('full_zero_shot', () => evaluateModel(full, task, tokenizer, { ...evalOpts, label: 'full zero-shot' }))).value;
  } finally {
    if (!runFull) full.dispose();
  }

  if (!opts.emulatorDir) {
    await phase('emulate', () =>
      createUniformEmulator({
        modelDir: opts.modelDir,
        outDir: emulatorDir,
        adapter: opts.adapter,
        selection: opts.selection,
        distill: opts.distill,
        dataRoot: opts.dataRoot,
        overwrite: opts.overwrite,
        logger: opts.logger,
        onStep: (i) => opts.onStep?.('emulate', i),
      }),
    );
  }
  const emu = await loadEmulator(emulatorDir);
  let emulatorZeroShot: number;
  let emulatorFineTuned: number;
  try {
    emulatorZeroShot = (await phase('emulator_zero_shot', () => evaluateModel(emu.model, task, tokenizer, { ...evalOpts, label: 'emulator zero-shot' }))).value;
    const tuned = await phase('tune', () => tuneAdapterInMemory(emu, task, tokenizer, hyper, opts.lora ?? null, { logger: opts.logger, onStep: (i) => opts.onStep?.('tune', i) }));
    emulatorFineTuned = (await phase('emulator_fine_tuned', () => evaluateModel(emu.model, task, tokenizer, { ...evalOpts, label: 'emulator fine-tuned' }))).value;
    const weights = adapterWeights(emu);
    try {
      await saveAdapter(adapterDir, emu.manifest, weights, {
        lora: opts.lora ?? null,
        parameters: { task: task.spec.name, taskType: task.spec.type, hyper, train: { steps: tuned.train.steps, finalLoss: tuned.train.losses.at(-1) ?? null } },
      }, { overwrite: opts.overwrite });
    } finally {
      tf.dispose([...weights.values()]);
    }
  } finally {
    emu.model.dispose();
  }

  await phase('plugin', () => plugIn({ modelDir: opts.modelDir, adapterDir, outDir: pluggedDir, overwrite: opts.overwrite }));
  const plugged = await loadModel(pluggedDir);
  let plugInValue: number;
  try {
    plugInValue = (await phase('plug_in', () => evaluateModel(plugged, task, tokenizer, { ...evalOpts, label: 'plug-in' }))).value;
  } finally {
    plugged.dispose();
  }

  let audit: EmulatorAuditResult | undefined;
  if (opts.audit) {
    const attackers = typeof opts.audit === 'object' ? opts.audit.attackers : undefined;
    audit = await phase('audit', () =>
      auditEmulator({ emulatorDir, task, adapterDir, modelDir: opts.modelDir, attackers, hyper, eval: opts.eval, logger: opts.logger, onStep: (_, i) => opts.onStep?.('audit', i) }),
    );
  }

  if (runFull) {
    try {
      await phase('full_fine_tune', () => fullFineTuneInMemory(full, task, tokenizer, hyper, { logger: opts.logger, onStep: (i) => opts.onStep?.('full_fine_tune', i) }));
      fullFineTuned = (await phase('full_fine_tuned', () => evaluateModel(full, task, tokenizer, { ...evalOpts, label: 'full fine-tuned' }))).value;
    } finally {
      full.dispose();
    }
  }

  const metric = taskMetric(task);
  return {
    full_zero_shot: fullZeroShot,
    emulator_zero_shot: emulatorZeroShot,
    emulator_fine_tuned: emulatorFineTuned,
    plug_in: plugInValue,
    full_fine_tuned: fullFineTuned,
    attacker: audit?.attacker ?? null,
    attackers: audit?.attackers ?? null,
    task: task.spec.name,
    taskType: task.spec.type,
    metric,
    higherIsBetter: metric === 'accuracy',
    protocolVersion: PROTOCOL_VERSION,
    hyperParameters: {
      train: hyper,
      lora: opts.lora ?? null,
      eval: { batchSize: opts.eval?.batchSize ?? 8, maxBlocks: opts.eval?.maxBlocks ?? null, maxExamples: opts.eval?.maxExamples ?? null },
      fullFineTune: runFull,
      audit: audit ? audit.details.map((d) => d.name) : null,
    },
    emulator: {
      method: emu.manifest.method,
      parameters: emu.manifest.parameters,
      layerMap: emu.manifest.layerMap,
      adapter: emu.manifest.adapter,
      compression: emu.manifest.compression,
      sourceModel: emu.manifest.sourceModel,
      blocks: emu.manifest.layerMap.filter((e) => e !== 'dropped').length,
    },
    artifacts: { modelDir: resolve(opts.modelDir), emulatorDir: resolve(emulatorDir), adapterDir, pluggedDir },
    timings: { ...timings, total: (performance.now() - started) / 1000 },
    createdAt: new Date().toISOString(),
  };
}

const COLUMNS: Array<[keyof FiveNumberReport, string]> = [
  ['full_zero_shot', 'full zero-shot'],
  ['emulator_zero_shot', 'emulator zero-shot'],
  ['emulator_fine_tuned', 'emulator fine-tuned'],
  ['plug_in', 'plug-in'],
  ['full_fine_tuned', 'full fine-tuning'],
];

const ATTACKER_COLUMN: [keyof FiveNumberReport, string] = ['attacker', 'attacker (best)'];

/** A Markdown table of one or more reports (one row per report), with the settings underneath. */
export function renderReportMarkdown(reports: FiveNumberReport | FiveNumberReport[]): string {
  const list = Array.isArray(reports) ? reports : [reports];
  const fmt = (r: FiveNumberReport, v: unknown) => (typeof v !== 'number' ? '—' : r.metric === 'accuracy' ? `${(100 * v).toFixed(1)}%` : v.toFixed(2));
  // The audit's column only where an audit ran, so reports without one read as before.
  const columns = list.some((r) => typeof r.attacker === 'number') ? [...COLUMNS, ATTACKER_COLUMN] : COLUMNS;
  const lines = [
    `| task | metric | ${columns.map(([, h]) => h).join(' | ')} |`,
    `|---|---|${columns.map(() => '---:').join('|')}|`,
    ...list.map((r) => `| ${r.task} | ${r.metric} ${r.higherIsBetter ? '↑' : '↓'} | ${columns.map(([k]) => fmt(r, r[k])).join(' | ')} |`),
    '',
  ];
  for (const r of list) {
    const h = r.hyperParameters.train;
    lines.push(
      `- **${r.task}**: emulator \`${r.emulator.method}\` (${r.emulator.blocks} of ${r.emulator.layerMap.length} blocks; ${JSON.stringify(r.emulator.parameters)}), ` +
        `AdamW lr ${h.lr}, ${h.warmupSteps} warmup steps then cosine to ${h.finalLrFraction * 100}%, ${h.steps} steps, batch ${h.batchSize} × ${h.seqLen ?? 'n_positions'} (micro-batch ${h.microBatchSize}), grad-clip ${h.gradClip}, weight decay ${h.weightDecay}, seed ${h.seed}` +
        `${r.hyperParameters.lora ? `, LoRA r=${r.hyperParameters.lora.rank} α=${r.hyperParameters.lora.alpha}` : ''}; protocol v${r.protocolVersion}; ${r.timings.total.toFixed(0)} s.`,
    );
    if (r.attackers) {
      lines.push(
        `  - privacy audit (same budget, every emulator weight trained, starting from the tuned adapter): ${Object.entries(r.attackers)
          .map(([name, v]) => `${name === 'finetune' ? 'fine-tune on the train split' : 'distil toward the plug-in\'s logits'} ${fmt(r, v)}`)
          .join(', ')}; best ${fmt(r, r.attacker)}.`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
