import { logFormat, progressLine, terminal } from '@scaleot/core';

/** One step of work reported by another process (a worker's stage-1 round or tuning step). */
export interface RemoteProgress {
  label: string;
  step: number;
  total: number;
  unit?: string;
  loss?: number;
  lr?: number;
  /** The work behind this bar ended (done or moved on): remove the bar. */
  ended?: boolean;
}

const started = new Map<string, { at: number; step: number }>();

/**
 * Draws the live bar for progress that arrives as events (the demo's requests run in workers): on a
 * terminal in human mode only; JSON logs carry the same progress as records.
 */
export function progressBar(p: RemoteProgress): void {
  if (logFormat() !== 'human' || !terminal.interactive) return;
  if (p.ended) {
    started.delete(p.label);
    terminal.clearBar();
    return;
  }
  const now = Date.now();
  const first = started.get(p.label) ?? { at: now, step: p.step };
  started.set(p.label, first);
  const rate = (p.step - first.step) / Math.max((now - first.at) / 1000, 1e-9);
  const etaS = rate > 0 ? (p.total - p.step) / rate : undefined;
  const fields: Record<string, number> = {};
  if (p.loss !== undefined) fields.loss = p.loss;
  if (p.lr !== undefined) fields.lr = p.lr;
  terminal.showBar(progressLine({ label: p.label, done: p.step, total: p.total, unit: p.unit ?? 'step', fields, etaS }), p.step >= p.total);
}
