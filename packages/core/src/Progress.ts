import type { Logger } from 'pino';
import { logFormat, progressLine, terminal } from './consoleOutput.js';

/** Fastest redraw of the live bar, ms. */
const BAR_INTERVAL_MS = 200;

export interface ProgressOptions {
  /** Total number of units (steps, batches, documents). */
  total: number;
  /** What is being counted, e.g. "step". Default: "step". */
  unit?: string;
  /** Logger that receives a structured progress record. Default: none. */
  logger?: Logger;
  /** Minimum milliseconds between two reports. Default: 2000. */
  intervalMs?: number;
  /** Draw the live bar on a terminal's stderr when the process logs for humans (`setLogFormat('human')`). Default: true. */
  bar?: boolean;
  /** Label shown in front of the bar and in log records. */
  label?: string;
}

/**
 * Progress for long work: a throttled pino record (`{label, done, total, rate, etaS, ...extra}`) for
 * logs, and in human mode on a terminal one live bar redrawn in place (log lines print above it).
 */
export class Progress {
  private done = 0;
  private lastReport = 0;
  private lastBar = 0;
  private readonly start = Date.now();
  private readonly opts: Required<Omit<ProgressOptions, 'logger'>> & { logger?: Logger };

  constructor(options: ProgressOptions) {
    this.opts = {
      unit: 'step',
      intervalMs: 2000,
      bar: true,
      label: 'progress',
      ...options,
    };
  }

  tick(n = 1, extra: Record<string, unknown> = {}): void {
    this.done += n;
    const now = Date.now();
    const finished = this.done >= this.opts.total;
    // The bar is cheap and redrawn often; log records stay throttled.
    if (this.opts.bar && logFormat() === 'human' && terminal.interactive && (now - this.lastBar >= BAR_INTERVAL_MS || finished)) {
      this.lastBar = now;
      const { label, total, unit } = this.opts;
      terminal.showBar(progressLine({ label, done: this.done, total, unit, fields: extra, etaS: this.eta() }), finished);
    }
    if (now - this.lastReport >= this.opts.intervalMs || finished) {
      this.lastReport = now;
      this.report(extra);
    }
  }

  private eta(): number {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-9);
    return rate > 0 ? (this.opts.total - this.done) / rate : Infinity;
  }

  private report(extra: Record<string, unknown>): void {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-9);
    const { label, total, unit } = this.opts;
    this.opts.logger?.info({ label, done: this.done, total, unit, rate: +rate.toFixed(3), etaS: Math.round(this.eta()), ...extra }, `${label} ${this.done}/${total}`);
  }
}
