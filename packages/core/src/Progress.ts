import type { Logger } from 'pino';

export interface ProgressOptions {
  /** Total number of units (steps, batches, documents). */
  total: number;
  /** What is being counted, e.g. "step". Default: "step". */
  unit?: string;
  /** Logger that receives a structured progress record. Default: none. */
  logger?: Logger;
  /** Minimum milliseconds between two reports. Default: 2000. */
  intervalMs?: number;
  /** Draw a one-line bar on stderr when it is a TTY. Default: true. */
  bar?: boolean;
  /** Label shown in front of the bar and in log records. */
  label?: string;
}

/**
 * Progress for long work: a bar on an interactive stderr, and a throttled pino record
 * (`{label, done, total, rate, etaS, ...extra}`) either way, so logs of headless runs show progress too.
 */
export class Progress {
  private done = 0;
  private lastReport = 0;
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
    if (now - this.lastReport >= this.opts.intervalMs || this.done >= this.opts.total) {
      this.lastReport = now;
      this.report(extra);
    }
  }

  private report(extra: Record<string, unknown>): void {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-9);
    const etaS = rate > 0 ? (this.opts.total - this.done) / rate : Infinity;
    const { label, total, unit } = this.opts;
    this.opts.logger?.info({ label, done: this.done, total, unit, rate: +rate.toFixed(3), etaS: Math.round(etaS), ...extra }, `${label} ${this.done}/${total}`);
    if (this.opts.bar && process.stderr.isTTY) {
      const width = 30;
      const filled = Math.round((width * this.done) / Math.max(total, 1));
      const fields = Object.entries(extra).map(([k, v]) => `${k}=${typeof v === 'number' ? v.toFixed(4) : String(v)}`).join(' ');
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.done}/${total} ${unit}s ${fields} eta ${Math.round(etaS)}s `);
      if (this.done >= total) process.stderr.write('\n');
    }
  }
}
