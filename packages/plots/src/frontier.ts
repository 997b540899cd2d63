import { renderSvg, vegaLiteChart, type ChartSpec } from './render.js';
import { metricDirection } from './metric.js';
import { htmlReport } from './report.js';

export interface FrontierChartPoint {
  label: string;
  /** ScaleOT emulators are the method's points; the others are baselines. */
  kind: 'scaleot' | 'uniform-layerdrop' | 'ceiling';
  emulator_fine_tuned: number;
  plug_in: number;
  /** The privacy audit's best attacker (`scaleot audit`); drawn at (attacker, plug-in) when finite. */
  attacker?: number | null;
}

const KIND_NAMES: Record<FrontierChartPoint['kind'], string> = {
  scaleot: 'ScaleOT emulator',
  'uniform-layerdrop': 'baseline: uniform LayerDrop',
  ceiling: 'baseline: adapter ceiling',
};
const ATTACKER_NAME = 'best attacker (audit)';

/**
 * Emulator fine-tuned (x) against plug-in (y), one point per emulator, both axes on one domain so the
 * dashed no-privacy diagonal (plug-in no better than the emulator alone) runs at 45°. Points are named
 * by the colour legend rather than by text beside them: vega's collision-avoiding `label` transform
 * needs a canvas, which headless SVG rendering does not have, and text beside close points overprints.
 * Shape tells the method's points from the baselines. Where the privacy audit ran, a hollow triangle
 * of the same colour marks the best attacker at (attacker, plug-in), joined to its emulator's point: its
 * distance from the diagonal is the privacy left when the data owner attacks the emulator itself.
 */
export function frontierSpec(points: FrontierChartPoint[], options: { title?: string; metric: string; higherIsBetter?: boolean }): ChartSpec {
  const direction = metricDirection(options.metric, options.higherIsBetter);
  const better = direction.higherIsBetter ? 'above' : 'below';
  const finite = points.filter((p) => Number.isFinite(p.emulator_fine_tuned) && Number.isFinite(p.plug_in));
  const ordered = [...finite.filter((p) => p.kind === 'scaleot'), ...finite.filter((p) => p.kind !== 'scaleot')];
  const values = ordered.map((p) => ({ label: p.label, kind: KIND_NAMES[p.kind], x: p.emulator_fine_tuned, y: p.plug_in }));
  const attacked = ordered
    .filter((p) => typeof p.attacker === 'number' && Number.isFinite(p.attacker))
    .map((p) => ({ label: p.label, kind: ATTACKER_NAME, x: p.attacker as number, x0: p.emulator_fine_tuned, y: p.plug_in }));
  const all = [...values.flatMap((v) => [v.x, v.y]), ...attacked.map((a) => a.x)];
  const lo = all.length ? Math.min(...all) : 0;
  const hi = all.length ? Math.max(...all) : 1;
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.06;
  const domain = [lo - pad, hi + pad];
  // The diagonal's caption sits on the line (both axes share the domain and the plot is square: 45°).
  const mid = domain[0] + 0.7 * (domain[1] - domain[0]);
  const x = { field: 'x', type: 'quantitative', scale: { domain, nice: false, zero: false }, title: `emulator fine-tuned (the data owner alone), ${options.metric}`, axis: { tickCount: 8, labelOverlap: true } } as const;
  const y = { field: 'y', type: 'quantitative', scale: { domain, nice: false, zero: false }, title: `plug-in (adapter in the full model), ${options.metric}`, axis: { tickCount: 8 } } as const;
  const shapeScale = attacked.length > 0 ? { domain: [...Object.values(KIND_NAMES), ATTACKER_NAME], range: ['circle', 'square', 'diamond', 'triangle-up'] } : { domain: Object.values(KIND_NAMES), range: ['circle', 'square', 'diamond'] };
  const color = { field: 'label', type: 'nominal', sort: values.map((v) => v.label), title: 'emulator', scale: { scheme: values.length <= 10 ? 'tableau10' : 'tableau20' }, legend: { orient: 'right', symbolType: 'circle' } } as const;
  const shape = { field: 'kind', type: 'nominal', title: 'kind', scale: shapeScale, legend: { orient: 'right' } } as const;
  const subtitle = [`${direction.words}. Points ${better} the dashed diagonal: the plug-in beats what the`, 'data owner gets from the emulator alone (model privacy); on the diagonal there is none.'];
  if (attacked.length > 0) subtitle.push('Hollow triangles: the best attacker of the privacy audit (every emulator weight trained, same budget).');
  const attackerLayers = attacked.length === 0
    ? []
    : [
        {
          data: { values: attacked },
          mark: { type: 'rule' as const, strokeDash: [2, 2], strokeWidth: 1.2, clip: true },
          encoding: { x, x2: { field: 'x0' }, y, color },
        },
        {
          data: { values: attacked },
          mark: { type: 'point' as const, filled: false, size: 150, opacity: 1, strokeWidth: 2 },
          encoding: {
            x,
            y,
            color,
            shape,
            tooltip: [{ field: 'label', title: 'emulator' }, { field: 'x', title: 'best attacker', format: '.2f' }, { field: 'y', title: 'plug-in', format: '.2f' }],
          },
        },
      ];
  return vegaLiteChart({
    title: {
      text: options.title ?? 'Privacy-utility frontier',
      subtitle,
    },
    width: 440,
    height: 440,
    layer: [
      {
        data: { values: [{ x: domain[0], y: domain[0] }, { x: domain[1], y: domain[1] }] },
        mark: { type: 'line', color: '#666', strokeDash: [6, 4], clip: true },
        encoding: { x, y },
      },
      {
        data: { values: [{ x: mid, y: mid, text: 'no privacy: plug-in = emulator fine-tuned' }] },
        mark: { type: 'text', align: 'center', baseline: 'bottom', dy: -4, angle: 315, fontSize: 11, color: '#444' },
        encoding: { x, y, text: { field: 'text' } },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, size: 150, opacity: 1, stroke: 'white', strokeWidth: 0.8 },
        encoding: {
          x,
          y,
          color,
          shape,
          tooltip: [{ field: 'label', title: 'emulator' }, { field: 'kind' }, { field: 'x', title: 'emulator fine-tuned', format: '.2f' }, { field: 'y', title: 'plug-in', format: '.2f' }],
        },
      },
      ...attackerLayers,
    ],
  });
}

export async function frontierChart(points: FrontierChartPoint[], options: { title?: string; metric: string; higherIsBetter?: boolean }): Promise<string> {
  return renderSvg(frontierSpec(points, options));
}

/** A frontier point with the numbers of its table row. */
export interface FrontierReportPoint extends FrontierChartPoint {
  full_zero_shot: number;
  emulator_zero_shot: number;
  /** Blocks the emulator runs; null when unknown (a report read back that does not say). */
  blocks: number | null;
}

/**
 * `scaleot frontier`'s page: the chart, a Markdown table of the numbers per emulator and the HTML page
 * holding both (and the layer-importance chart when there is one). The same for a frontier just run and
 * one read back from reports.
 */
export async function frontierReport(
  points: FrontierReportPoint[],
  options: { task: string; metric: string; higherIsBetter?: boolean; importanceSvg?: string; sources?: string[] },
): Promise<{ svg: string; table: string; html: string }> {
  const svg = await frontierChart(points, { title: `Privacy-utility frontier (${options.task})`, metric: options.metric, higherIsBetter: options.higherIsBetter });
  const audited = points.some((p) => typeof p.attacker === 'number');
  const table = [
    `| emulator | blocks | full zero-shot | emulator zero-shot | emulator fine-tuned | plug-in |${audited ? ' attacker (best) |' : ''}`,
    `|---|---:|---:|---:|---:|---:|${audited ? '---:|' : ''}`,
    ...points.map(
      (p) => `| ${p.label} | ${p.blocks ?? 'n/a'} | ${p.full_zero_shot.toFixed(3)} | ${p.emulator_zero_shot.toFixed(3)} | ${p.emulator_fine_tuned.toFixed(3)} | ${p.plug_in.toFixed(3)} |${audited ? ` ${p.attacker?.toFixed(3) ?? '—'} |` : ''}`,
    ),
  ].join('\n');
  const html = htmlReport(`ScaleOT privacy-utility frontier: ${options.task}`, [
    { heading: 'Emulator fine-tuned vs plug-in', text: 'One point per emulator; squares and diamonds are baselines (uniform LayerDrop, the adapter ceiling). The dashed diagonal is no privacy: there the data owner gets from the emulator alone what the plug-in gives. A larger gap between plug-in and emulator fine-tuned means more model privacy at the same utility.' + (audited ? " Hollow triangles: the privacy audit's best attacker (every emulator weight trained on the data owner's data, or distilled toward the plug-in's outputs, at the same budget), joined to its emulator's point; the privacy that survives an attacker is its distance from the diagonal." : ''), svg },
    { heading: 'Five numbers per emulator', table },
    ...(options.importanceSvg ? [{ heading: 'Learned layer importance', svg: options.importanceSvg }] : []),
    ...(options.sources?.length ? [{ heading: 'Reports charted', list: options.sources.map((s) => `\`${s}\``) }] : []),
  ]);
  return { svg, table, html };
}
