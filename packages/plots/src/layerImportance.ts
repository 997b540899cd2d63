import { renderSvg, vegaLiteChart, type ChartSpec } from './render.js';

export interface ImportanceBlock {
  index: number;
  role: 'adapter' | 'middle';
  /** null for adapter blocks: they are always kept, never scored. */
  score: number | null;
}

/**
 * One bar per middle block's learned importance score, a zero line, and the adapter blocks marked as
 * shaded columns (kept on both sides, never scored).
 */
export function layerImportanceSpec(blocks: ImportanceBlock[], title = 'Stage 1: learned importance per block'): ChartSpec {
  const values = blocks.map((b) => ({ block: b.index, role: b.role === 'adapter' ? 'adapter block (kept, not scored)' : 'middle block (scored)', score: b.score }));
  const order = blocks.map((b) => b.index);
  const x = { field: 'block', type: 'ordinal', sort: order, title: 'transformer block', scale: { paddingInner: 0.15 }, axis: { labelAngle: 0 } } as const;
  const color = { field: 'role', type: 'nominal', title: null, scale: { domain: ['middle block (scored)', 'adapter block (kept, not scored)'], range: ['#1f5fa8', '#d9d9d9'] }, legend: { orient: 'bottom' } } as const;
  return vegaLiteChart({
    title: { text: title, subtitle: 'score s_i: higher means replacing the block hurts more, so it is more likely kept' },
    width: Math.max(360, 26 * blocks.length),
    height: 260,
    data: { values },
    layer: [
      {
        transform: [{ filter: "datum.role !== 'middle block (scored)'" }],
        mark: { type: 'rect', opacity: 0.9 },
        encoding: { x, y: { value: 0 }, y2: { value: { expr: 'height' } }, color },
      },
      {
        transform: [{ filter: 'isValid(datum.score)' }],
        mark: { type: 'bar' },
        encoding: { x, y: { field: 'score', type: 'quantitative', title: 'importance score s_i' }, color, tooltip: [{ field: 'block' }, { field: 'score', format: '.4f' }] },
      },
      { mark: { type: 'rule', color: '#111', strokeWidth: 1.2 }, encoding: { y: { datum: 0 } } },
    ],
  });
}

export async function layerImportanceChart(blocks: ImportanceBlock[], title?: string): Promise<string> {
  return renderSvg(layerImportanceSpec(blocks, title));
}
