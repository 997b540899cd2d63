import { describe, expect, it } from 'vitest';
import { explainedReport, type FiveNumbers } from '@scaleot/cluster';

const numbers = (emulatorFineTuned: number, plugIn: number, emulatorZero: number): FiveNumbers => ({
  task: 'moby',
  metric: 'perplexity',
  higherIsBetter: false,
  full_zero_shot: 300,
  emulator_zero_shot: emulatorZero,
  emulator_fine_tuned: emulatorFineTuned,
  plug_in: plugIn,
  full_fine_tuned: 200,
});

describe('explainedReport', () => {
  it('explains the five numbers, each emulator in words, ranks them, states the protocol; HTML has real tables and inline charts', async () => {
    const report = await explainedReport({
      title: 'demo',
      baseModel: 'sotu-gpt2-tiny',
      emulators: [
        { preset: { nAdapter: 4, alpha: 0.5, beta: 0 }, report: numbers(240, 220, 400), request: 'req-a' },
        { preset: { nAdapter: 4, alpha: 0.75, beta: 0.5 }, report: numbers(280, 230, 500) },
      ],
      protocol: { task: 'moby', metric: 'perplexity', higherIsBetter: false, unit: 'blocks of 257 tokens', evaluated: 24, total: 244, full: false, protocolVersion: 1 },
      versions: { scaleot: '0.1.0' },
      hyperParameters: { evaluation: { maxBlocks: 24 } },
    });
    const md = report.markdown;
    for (const n of ['**full zero-shot**', '**emulator zero-shot**', '**emulator fine-tuned**', '**plug-in**', '**full fine-tuning**']) expect(md).toContain(n);
    // Utility: plug-in 220 vs full zero-shot 300 and full fine-tuning 200 -> 80% of the improvement.
    expect(md).toContain('Plug-in 220.00 is 26.7% better than the full model zero-shot (300.00) and gets 80% of the improvement full fine-tuning reaches');
    // Privacy: the data owner alone gets 240, 9.1% worse than the plug-in.
    expect(md).toContain('reaches 240.00, 9.1% worse than the plug-in');
    expect(md).toContain('By utility (plug-in, best first): 1. N_a=4 α=0.5 β=0 (220.00); 2. N_a=4 α=0.75 β=0.5 (230.00).');
    expect(md).toContain('By model privacy (gap between emulator fine-tuned and plug-in, largest first): 1. N_a=4 α=0.75 β=0.5');
    expect(md).toContain('Evaluated: 24 of 244 test blocks of 257 tokens: **a subset**');
    expect(md).toContain('![Results](plots/five-numbers.svg)');
    expect(report.charts.map((c) => c.file)).toEqual(['plots/five-numbers.svg']);
    expect(report.html).toContain('<th scope="col">emulator fine-tuned</th>');
    expect(report.html).not.toContain('<pre>');
    expect(report.html).toContain('<figure role="img" aria-label="Results"><svg');
    expect(report.html).toContain('<strong>a subset</strong>');
  });
});
