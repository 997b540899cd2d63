/** How a metric reads: its direction, spelled out on every chart and report that shows it. */
export function metricDirection(metric: string, higherIsBetter?: boolean): { higherIsBetter: boolean; words: string } {
  const higher = higherIsBetter ?? metric === 'accuracy';
  return { higherIsBetter: higher, words: `${metric}, ${higher ? 'higher' : 'lower'} is better` };
}

/** A number as a report prints it: accuracies with 4 decimals, perplexities and losses with 2. */
export function formatMetric(metric: string, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toFixed(metric === 'accuracy' ? 4 : 2);
}
