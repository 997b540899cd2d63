import { describe, expect, it } from 'vitest';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { barChart, htmlReport, layerImportanceChart, lineChart, scatterChart, scoreTrajectoryChart } from '@scaleot/plots';

const valid = (svg: string) => expect(XMLValidator.validate(svg)).toBe(true);

describe('plots', () => {
  it('bar, line, scatter and importance charts are well-formed SVG that carries the data labels', () => {
    const bars = barChart('five <numbers>', [{ label: 'full & zero', value: 300 }, { label: 'plug-in', value: null }], 'ppl');
    valid(bars);
    expect(bars).toContain('full &amp; zero');
    expect(bars).toContain('n/a');
    valid(lineChart('loss', [{ name: 'train', values: [5, 4, 3.5] }], 'step', 'nats'));
    const scatter = scatterChart('frontier', [{ label: 'α=0.5 β=0', x: 181, y: 185 }, { label: 'uniform', x: 184, y: 187, baseline: true }, { label: 'bad', x: NaN, y: 1 }], 'emulator fine-tuned', 'plug-in');
    valid(scatter);
    const doc = new XMLParser({ ignoreAttributes: false }).parse(scatter);
    expect([doc.svg.circle].flat()).toHaveLength(1);
    expect([doc.svg.rect].flat().filter((r: Record<string, string>) => r['@_fill'] === 'none')).toHaveLength(1);
    expect(scatter).not.toContain('>bad<');
    valid(layerImportanceChart([{ index: 0, role: 'adapter', score: null }, { index: 2, role: 'middle', score: 0.4 }]));
    valid(scoreTrajectoryChart([{ step: 1, scores: { '2': 0.1 } }, { step: 2, scores: { '2': 0.3 } }]));
  });

  it('htmlReport escapes text and embeds SVG', () => {
    const html = htmlReport('a <b>', [{ heading: 'x', text: '1 < 2', svg: '<svg></svg>', table: '| a |' }]);
    expect(html).toContain('a &lt;b&gt;');
    expect(html).toContain('1 &lt; 2');
    expect(html).toContain('<svg></svg>');
  });
});
