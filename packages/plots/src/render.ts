import { parse, View, type Spec as VegaSpec } from 'vega';
import { compile, type TopLevelSpec as VegaLiteSpec } from 'vega-lite';

export type { VegaSpec, VegaLiteSpec };

/** A chart spec: Vega-Lite for the plain charts, Vega where a transform Vega-Lite lacks (label placement) is needed. */
export type ChartSpec = { grammar: 'vega-lite'; spec: VegaLiteSpec } | { grammar: 'vega'; spec: VegaSpec };

/** One look for every chart: readable fonts, dark text on white, the same sizes in reports and the dashboard. */
export const CHART_CONFIG = {
  font: 'DejaVu Sans, Verdana, sans-serif',
  background: 'white',
  padding: 8,
  title: { fontSize: 15, subtitleFontSize: 12, subtitleColor: '#333', anchor: 'start', color: '#111' },
  axis: { labelFontSize: 11, titleFontSize: 12, labelColor: '#222', titleColor: '#111', gridColor: '#e3e3e3' },
  legend: { labelLimit: 0, labelFontSize: 11, titleFontSize: 12, labelColor: '#222', titleColor: '#111' },
} as const;

/** A Vega-Lite chart in the project's look: the schema and CHART_CONFIG added to the chart's own spec. */
export function vegaLiteChart(spec: VegaLiteSpec): ChartSpec {
  return { grammar: 'vega-lite', spec: { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CHART_CONFIG, ...spec } as VegaLiteSpec };
}

/** The Vega spec of a chart (Vega-Lite compiled). */
export function toVega(chart: ChartSpec): VegaSpec {
  return chart.grammar === 'vega' ? chart.spec : compile(chart.spec).spec;
}

/**
 * Renders a chart spec to a standalone SVG string with vega's headless SVG renderer: no canvas and no
 * native module (text widths are estimated, so labels are placed with a margin).
 */
export async function renderSvg(chart: ChartSpec): Promise<string> {
  const view = new View(parse(toVega(chart)), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
