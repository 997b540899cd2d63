import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  fiveNumbersChart,
  fiveNumbersSpec,
  frontierChart,
  frontierSpec,
  htmlReport,
  layerImportanceChart,
  layerImportanceSpec,
  markdownReport,
  parseMarkdownTable,
  scoreTrajectoryChart,
  stage1CurvesChart,
  toVega,
} from '@scaleot/plots';

const valid = (svg: string) => {
  expect(XMLValidator.validate(svg)).toBe(true);
  expect(svg).toMatch(/^<svg/);
};

/** Every text node of an SVG, in document order. */
function texts(svg: string): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'text') [v].flat().forEach((t) => out.push(typeof t === 'object' ? String((t as Record<string, unknown>)['#text'] ?? '') : String(t)));
        else walk(v);
      }
    }
  };
  walk(new XMLParser({ ignoreAttributes: true, parseTagValue: false }).parse(svg));
  return out;
}

const five = (emulator: string, emulatorZero: number) => ({
  emulator,
  metric: 'perplexity',
  higherIsBetter: false,
  full_zero_shot: 309.56,
  emulator_zero_shot: emulatorZero,
  emulator_fine_tuned: 190.3,
  plug_in: 181.2,
  full_fine_tuned: null,
});

describe('charts (Vega-Lite specs rendered by vega)', () => {
  it('five numbers: one shared scale for every emulator, the direction in the title, values labelled, a missing number left out', async () => {
    const series = [five('N_a=4 α=0.5 β=0', 420.1), five('N_a=4 α=0.75 β=0.5', 510.7)];
    const spec = fiveNumbersSpec(series);
    expect(spec.grammar).toBe('vega-lite');
    expect(JSON.stringify(spec.spec)).toContain('"resolve":{"scale":{"x":"shared"}}');
    const svg = await fiveNumbersChart(series, 'moby <five>');
    valid(svg);
    const t = texts(svg);
    expect(t).toContain('moby <five>');
    expect(t.some((s) => s.includes('perplexity, lower is better'))).toBe(true);
    for (const v of ['309.56', '420.10', '510.70', '190.30', '181.20']) expect(t).toContain(v);
    expect(t).toContain('N_a=4 α=0.75 β=0.5');
    expect(t).not.toContain('full fine-tuning');
    // One x axis for both panels: the tick labels appear once, not once per emulator.
    expect(t.filter((s) => s === '300')).toHaveLength(1);
  });

  it('frontier: every point named in the legend, baselines by shape, the no-privacy diagonal, non-finite points dropped', async () => {
    const svg = await frontierChart(
      [
        { label: 'α=0.5 β=0', kind: 'scaleot', emulator_fine_tuned: 190.3, plug_in: 181.2 },
        { label: 'α=0.5 β=0.5', kind: 'scaleot', emulator_fine_tuned: 190.4, plug_in: 181.3 },
        { label: 'uniform', kind: 'uniform-layerdrop', emulator_fine_tuned: 196, plug_in: 187.5 },
        { label: 'ceiling', kind: 'ceiling', emulator_fine_tuned: 176, plug_in: 176 },
        { label: 'broken', kind: 'scaleot', emulator_fine_tuned: NaN, plug_in: 1 },
      ],
      { metric: 'perplexity', higherIsBetter: false },
    );
    valid(svg);
    const t = texts(svg);
    for (const label of ['α=0.5 β=0', 'α=0.5 β=0.5', 'uniform', 'ceiling', 'baseline: uniform LayerDrop', 'baseline: adapter ceiling', 'ScaleOT emulator']) expect(t).toContain(label);
    expect(t).not.toContain('broken');
    expect(t.some((s) => s.startsWith('no privacy'))).toBe(true);
    expect(svg).toContain('stroke-dasharray="6,4"');
  });

  it('frontier: the audit\'s best attacker as a hollow triangle at (attacker, plug-in), the axes widened to hold it', async () => {
    const points = [
      { label: 'α=0.5 β=0', kind: 'scaleot' as const, emulator_fine_tuned: 190.3, plug_in: 181.2, attacker: 150.5 },
      { label: 'uniform', kind: 'uniform-layerdrop' as const, emulator_fine_tuned: 196, plug_in: 187.5, attacker: null },
    ];
    const spec = frontierSpec(points, { metric: 'perplexity', higherIsBetter: false });
    expect(spec.grammar).toBe('vega-lite');
    const layers = (spec.spec as unknown as { layer: Array<{ mark: { type: string; filled?: boolean }; data: { values: Array<Record<string, unknown>> } }> }).layer;
    const hollow = layers.find((l) => l.mark.type === 'point' && l.mark.filled === false)!;
    expect(hollow.data.values).toEqual([{ label: 'α=0.5 β=0', kind: 'best attacker (audit)', x: 150.5, x0: 190.3, y: 181.2 }]);
    expect(layers.some((l) => l.mark.type === 'rule')).toBe(true);
    // The shared domain holds the attacker (below every other value here).
    const domain = (layers[0] as unknown as { encoding: { x: { scale: { domain: number[] } } } }).encoding.x.scale.domain;
    expect(domain[0]).toBeLessThan(150.5);
    const svg = await frontierChart(points, { metric: 'perplexity', higherIsBetter: false });
    valid(svg);
    const t = texts(svg);
    expect(t).toContain('best attacker (audit)');
    expect(svg).toContain('Hollow triangles: the best attacker');
    // Without an audit the chart is as before: no attacker entry.
    expect(texts(await frontierChart(points.map((p) => ({ ...p, attacker: null })), { metric: 'perplexity' }))).not.toContain('best attacker (audit)');
  });

  it('layer importance: a zero line and the adapter blocks marked', async () => {
    const blocks = [
      { index: 0, role: 'adapter' as const, score: null },
      { index: 1, role: 'middle' as const, score: 0.4 },
      { index: 2, role: 'middle' as const, score: -0.2 },
      { index: 3, role: 'adapter' as const, score: null },
    ];
    const vega = JSON.stringify(toVega(layerImportanceSpec(blocks)));
    expect(vega).toContain('datum.role !== \'middle block (scored)\'');
    const svg = await layerImportanceChart(blocks);
    valid(svg);
    const t = texts(svg);
    expect(t).toContain('adapter block (kept, not scored)');
    // The zero line is a rule mark of its own, beside the axis grid.
    expect(svg).toMatch(/class="mark-rule role-mark layer_\d+_marks"/);
    expect(t).toEqual(expect.arrayContaining(['0', '1', '2', '3']));
  });

  it('stage-1 curves and score trajectories: one distinct colour per block', async () => {
    const log = Array.from({ length: 6 }, (_, k) => ({
      step: k + 1,
      loss: 5 - k * 0.1,
      rollouts: k % 2 ? { losses: [5 - k * 0.05, 5.1] } : undefined,
      scores: Object.fromEntries(Array.from({ length: 12 }, (_, b) => [String(b + 2), b * 0.01 + k * 0.001])),
    }));
    const curves = await stage1CurvesChart(log);
    valid(curves);
    expect(texts(curves)).toEqual(expect.arrayContaining(['LM loss (nats/token)', 'reward (−loss, nats/token)']));
    const traj = await scoreTrajectoryChart(log);
    valid(traj);
    const strokes = new Set([...traj.matchAll(/<path[^>]*aria-roledescription="line mark"[^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]));
    expect(strokes.size).toBe(12);
  });

  it('draws nothing by hand: no SVG element is written in the package source', () => {
    const dir = join(import.meta.dirname, '../src');
    for (const file of readdirSync(dir)) {
      const src = readFileSync(join(dir, file), 'utf8');
      expect(src, file).not.toMatch(/<(svg|line|rect|polyline|path|circle|text)[\s>]/);
    }
  });
});

describe('reports', () => {
  it('htmlReport renders Markdown tables as real tables, escapes text and embeds SVG', () => {
    const html = htmlReport('a <b>', [{ heading: 'x', text: '1 < 2 and **bold**', svg: '<svg></svg>', table: '| emulator | plug-in |\n|---|---:|\n| α=0.5 | 181.20 |' }]);
    expect(html).toContain('a &lt;b&gt;');
    expect(html).toContain('1 &lt; 2 and <strong>bold</strong>');
    expect(html).toContain('<svg></svg>');
    expect(html).not.toContain('<pre>');
    expect(html).toContain('<th scope="col">plug-in</th>');
    expect(html).toContain('<td class="num">181.20</td>');
  });

  it('markdownReport and parseMarkdownTable round-trip a table', () => {
    const md = markdownReport('r', [{ heading: 'h', table: { header: ['a', 'b'], rows: [['x', 1]] }, list: ['one'], image: 'plots/c.svg' }]);
    expect(md).toContain('- one');
    expect(md).toContain('![h](plots/c.svg)');
    expect(parseMarkdownTable(md)).toEqual({ header: ['a', 'b'], rows: [['x', '1']] });
  });
});
