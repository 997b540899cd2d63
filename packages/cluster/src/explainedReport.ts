import {
  fiveNumbersChart,
  formatMetric,
  htmlReport,
  layerImportanceChart,
  markdownReport,
  metricDirection,
  scoreTrajectoryChart,
  stage1CurvesChart,
  type ImportanceBlock,
  type ReportSection,
  type Stage1CurvePoint,
} from '@scaleot/plots';
import type { FiveNumbers, PrivacyPreset } from './Coordinator.js';
import type { EvaluationProtocol } from './evaluationProtocol.js';

/** One emulator's result in a report. */
export interface ExplainedEmulator {
  preset: PrivacyPreset;
  report: FiveNumbers;
  /** The tuning request it came from, when there is one. */
  request?: string;
}

export interface ExplainedReportInput {
  title: string;
  baseModel: string;
  emulators: ExplainedEmulator[];
  /** How the numbers were measured (blocks or examples evaluated); omitted: the section says it is unknown. */
  protocol?: EvaluationProtocol;
  /** Opening lines (e.g. how the run was executed). */
  intro?: string[];
  /** Versions of what produced the numbers (package, node, tfjs, backend, protocol). */
  versions: Record<string, string | number>;
  /** Hyper-parameter groups (`stage 1`, `adapter tuning`, `evaluation`), each printed as `key=value`. */
  hyperParameters: Record<string, Record<string, unknown>>;
  /** Stage-1 artifacts of the model owner, when the report covers stage 1. */
  stage1?: { importance: ImportanceBlock[]; log: Stage1CurvePoint[] };
}

export interface ExplainedReport {
  markdown: string;
  html: string;
  /** The charts as SVG files (names relative to the report, under `plots/`). */
  charts: { file: string; svg: string }[];
}

export function presetName(p: PrivacyPreset): string {
  return `N_a=${p.nAdapter} α=${p.alpha} β=${p.beta}`;
}

/** `a` relative to `b` in words, in the metric's direction ("12.3% worse than"). */
function relative(a: number, b: number, higherIsBetter: boolean): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'not comparable with';
  const pct = ((a - b) / Math.abs(b)) * 100;
  if (Math.abs(pct) < 0.05) return 'the same as';
  const better = higherIsBetter ? pct > 0 : pct < 0;
  return `${Math.abs(pct).toFixed(1)}% ${better ? 'better' : 'worse'} than`;
}

/** Signed improvement of `a` over `b` in the metric's direction. */
function gain(a: number, b: number, higherIsBetter: boolean): number {
  return higherIsBetter ? a - b : b - a;
}

export const FIVE_NUMBER_MEANINGS: string[] = [
  '**full zero-shot**: the model owner\'s full model on the task before any tuning (the starting point).',
  '**emulator zero-shot**: the compressed emulator the data owner receives, untuned; far from full zero-shot means the emulator alone is a poor substitute for the model.',
  '**emulator fine-tuned**: the emulator after the data owner tuned its adapter blocks on their private data: the best the data owner can get without the owner\'s full model.',
  '**plug-in**: the tuned adapter plugged back into the full model: what the offsite-tuning delivers (utility).',
  '**full fine-tuning**: the full model with every weight tuned on the task at the same budget: the ceiling plug-in is measured against.',
];

function utilityWords(e: ExplainedEmulator): string {
  const r = e.report;
  const hib = r.higherIsBetter;
  const fmt = (v: number | null) => formatMetric(r.metric, v);
  let s = `**Utility.** Plug-in ${fmt(r.plug_in)} is ${relative(r.plug_in, r.full_zero_shot, hib)} the full model zero-shot (${fmt(r.full_zero_shot)})`;
  if (r.full_fine_tuned !== null) {
    const total = gain(r.full_fine_tuned, r.full_zero_shot, hib);
    const got = gain(r.plug_in, r.full_zero_shot, hib);
    const share = total !== 0 ? ` and gets ${((got / total) * 100).toFixed(0)}% of the improvement full fine-tuning reaches` : '';
    s += `${share} (full fine-tuning: ${fmt(r.full_fine_tuned)}, plug-in ${relative(r.plug_in, r.full_fine_tuned, hib)} it)`;
  } else s += ' (full fine-tuning was not run)';
  return `${s}.`;
}

function privacyWords(e: ExplainedEmulator): string {
  const r = e.report;
  const hib = r.higherIsBetter;
  const fmt = (v: number) => formatMetric(r.metric, v);
  const kept = gain(r.plug_in, r.emulator_fine_tuned, hib) > 0;
  return (
    `**Privacy.** Alone, the data owner's tuned emulator reaches ${fmt(r.emulator_fine_tuned)}, ${relative(r.emulator_fine_tuned, r.plug_in, hib)} the plug-in: ` +
    (kept ? 'the gap is the value the model owner keeps by not handing over the full model (larger gap, more model privacy). ' : 'the emulator alone is as good as the plug-in, so the full model adds nothing and the model is not protected. ') +
    `Untuned, the emulator (${fmt(r.emulator_zero_shot)}) is ${relative(r.emulator_zero_shot, r.full_zero_shot, hib)} the full model zero-shot (${fmt(r.full_zero_shot)}).`
  );
}

function rankings(emulators: ExplainedEmulator[]): string[] {
  if (emulators.length < 2) return [];
  const hib = emulators[0]!.report.higherIsBetter;
  const byUtility = [...emulators].sort((a, b) => gain(a.report.plug_in, b.report.plug_in, hib) * -1 || 0);
  const gap = (e: ExplainedEmulator) => gain(e.report.plug_in, e.report.emulator_fine_tuned, hib) / Math.abs(e.report.plug_in || 1);
  const byPrivacy = [...emulators].sort((a, b) => gap(b) - gap(a));
  const fmt = (e: ExplainedEmulator, v: number) => formatMetric(e.report.metric, v);
  return [
    `By utility (plug-in, best first): ${byUtility.map((e, i) => `${i + 1}. ${presetName(e.preset)} (${fmt(e, e.report.plug_in)})`).join('; ')}.`,
    `By model privacy (gap between emulator fine-tuned and plug-in, largest first): ${byPrivacy.map((e, i) => `${i + 1}. ${presetName(e.preset)} (${(gap(e) * 100).toFixed(1)}%)`).join('; ')}.`,
  ];
}

function protocolWords(protocol: EvaluationProtocol | undefined, metric: string, higherIsBetter: boolean): string[] {
  const dir = metricDirection(metric, higherIsBetter).words;
  if (!protocol) return [`Metric: ${dir}.`, 'Evaluated units: not recorded for this run.'];
  return [
    `Metric: ${dir} (task \`${protocol.task}\`, evaluation protocol version ${protocol.protocolVersion}).`,
    `Evaluated: ${protocol.evaluated} of ${protocol.total} test ${protocol.unit}: ` +
      (protocol.full ? 'the full protocol.' : `**a subset**, so these numbers are not comparable with full-protocol numbers (run without the evaluation limit for those).`),
  ];
}

function kv(group: Record<string, unknown>): string {
  return Object.entries(group)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(', ');
}

/** A report that explains itself: what the numbers mean, each emulator in words, rankings, charts, protocol, versions, settings. */
export async function explainedReport(input: ExplainedReportInput): Promise<ExplainedReport> {
  const first = input.emulators[0];
  const metric = first?.report.metric ?? 'metric';
  const hib = first?.report.higherIsBetter ?? false;
  const fmt = (v: number | null) => formatMetric(metric, v);
  const charts: ExplainedReport['charts'] = [];
  const chart = (file: string, svg: string) => {
    charts.push({ file: `plots/${file}`, svg });
    return { svg, image: `plots/${file}` };
  };
  const sections: ReportSection[] = [];
  sections.push({ heading: 'What the five numbers mean', list: FIVE_NUMBER_MEANINGS, text: `All five are ${metricDirection(metric, hib).words}.` });
  sections.push({
    heading: 'Results',
    table: {
      header: ['emulator', 'full zero-shot', 'emulator zero-shot', 'emulator fine-tuned', 'plug-in', 'full fine-tuning'],
      rows: input.emulators.map((e) => [presetName(e.preset), fmt(e.report.full_zero_shot), fmt(e.report.emulator_zero_shot), fmt(e.report.emulator_fine_tuned), fmt(e.report.plug_in), fmt(e.report.full_fine_tuned)]),
    },
    ...chart(
      'five-numbers.svg',
      await fiveNumbersChart(
        input.emulators.map((e) => ({ emulator: presetName(e.preset), ...e.report })),
        `${first?.report.task ?? ''}: the five numbers per emulator`.replace(/^: /, ''),
      ),
    ),
  });
  for (const e of input.emulators) {
    sections.push({ heading: `Emulator ${presetName(e.preset)}${e.request ? ` (request ${e.request})` : ''}`, text: [utilityWords(e), privacyWords(e)] });
  }
  const ranked = rankings(input.emulators);
  if (ranked.length) sections.push({ heading: 'Emulators ranked', list: ranked });
  if (input.stage1) {
    sections.push({
      heading: 'Stage 1: learned layer importance',
      text: 'Blocks with a higher score hurt more when replaced by their harmonizer, so the emulator keeps them; the adapter blocks at both ends are always kept and never scored.',
      ...chart('layer-importance.svg', await layerImportanceChart(input.stage1.importance)),
    });
    sections.push({ heading: 'Stage 1: loss and reward', ...chart('stage1-curves.svg', await stage1CurvesChart(input.stage1.log)) });
    sections.push({ heading: 'Stage 1: score trajectories', ...chart('score-trajectories.svg', await scoreTrajectoryChart(input.stage1.log)) });
  }
  sections.push({ heading: 'Protocol', list: protocolWords(input.protocol, metric, hib) });
  sections.push({
    heading: 'Versions and hyper-parameters',
    table: {
      header: ['what', 'value'],
      rows: [
        ...Object.entries(input.versions).map(([k, v]) => [k, String(v)]),
        ['base model', input.baseModel],
        ['privacy presets (N_a, α, β)', input.emulators.map((e) => presetName(e.preset)).join('; ')],
        ...Object.entries(input.hyperParameters).map(([k, v]) => [k, kv(v)]),
      ],
    },
  });
  return {
    markdown: markdownReport(input.title, sections, input.intro),
    html: htmlReport(input.title, sections.map((s) => ({ ...s, image: undefined })), input.intro),
    charts,
  };
}
