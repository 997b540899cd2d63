import { renderSvg, vegaLiteChart, type ChartSpec } from './render.js';
import { formatMetric, metricDirection } from './metric.js';

/** The five offsite-tuning numbers of one emulator. */
export interface FiveNumbersSeries {
  /** How the emulator is named on the chart, e.g. `N_a=4 α=0.5 β=0`. */
  emulator: string;
  metric: string;
  higherIsBetter?: boolean;
  full_zero_shot: number;
  emulator_zero_shot: number;
  emulator_fine_tuned: number;
  plug_in: number;
  full_fine_tuned: number | null;
}

/** The five numbers in the order the method reads them, with what each one is. */
export const FIVE_NUMBERS = [
  { key: 'full_zero_shot', name: 'full zero-shot', group: 'full model' },
  { key: 'emulator_zero_shot', name: 'emulator zero-shot', group: 'emulator (data owner side)' },
  { key: 'emulator_fine_tuned', name: 'emulator fine-tuned', group: 'emulator (data owner side)' },
  { key: 'plug_in', name: 'plug-in', group: 'plug-in (adapter in full model)' },
  { key: 'full_fine_tuned', name: 'full fine-tuning', group: 'full model' },
] as const;

/**
 * One dot per number, one row of panels per emulator, all on one shared x scale (not from zero: the
 * numbers differ by a few percent and a zero-based bar would hide it). The title states the direction.
 */
export function fiveNumbersSpec(series: FiveNumbersSeries[], title = 'The five numbers per emulator'): ChartSpec {
  const first = series[0];
  const direction = metricDirection(first?.metric ?? 'metric', first?.higherIsBetter);
  const values = series.flatMap((s) =>
    FIVE_NUMBERS.filter((n) => s[n.key] !== null && Number.isFinite(s[n.key])).map((n, order) => ({
      emulator: s.emulator,
      number: n.name,
      group: n.group,
      order,
      value: s[n.key] as number,
      text: formatMetric(s.metric, s[n.key]),
    })),
  );
  return vegaLiteChart({
    title: { text: title, subtitle: `${direction.words}; one shared scale for every emulator` },
    data: { values },
    facet: { row: { field: 'emulator', type: 'nominal', title: null, header: { labelFontSize: 12, labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top', labelFontWeight: 'bold' } } },
    spec: {
      width: 460,
      height: { step: 22 },
      layer: [
        {
          mark: { type: 'rule', color: '#c8c8c8' },
          encoding: {
            y: { field: 'number', type: 'nominal', sort: FIVE_NUMBERS.map((n) => n.name), title: null },
            x: { aggregate: 'min', field: 'value', type: 'quantitative' },
            x2: { aggregate: 'max', field: 'value' },
          },
        },
        {
          mark: { type: 'point', filled: true, size: 110 },
          encoding: {
            y: { field: 'number', type: 'nominal', sort: FIVE_NUMBERS.map((n) => n.name), title: null },
            x: { field: 'value', type: 'quantitative', scale: { zero: false, nice: true }, title: direction.words },
            color: { field: 'group', type: 'nominal', title: 'which model', scale: { range: ['#1f5fa8', '#c4381b', '#2a8a3e'] }, legend: { orient: 'bottom' } },
            shape: { field: 'group', type: 'nominal', title: 'which model', legend: { orient: 'bottom' } },
            tooltip: [{ field: 'number' }, { field: 'text', title: first?.metric ?? 'value' }],
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 9, fontSize: 11, color: '#222' },
          encoding: {
            y: { field: 'number', type: 'nominal', sort: FIVE_NUMBERS.map((n) => n.name) },
            x: { field: 'value', type: 'quantitative' },
            text: { field: 'text' },
          },
        },
      ],
    },
    resolve: { scale: { x: 'shared' } },
  });
}

export async function fiveNumbersChart(series: FiveNumbersSeries[], title?: string): Promise<string> {
  return renderSvg(fiveNumbersSpec(series, title));
}
