/**
 * How this process talks to a person or a machine on stderr. `json`: pino JSON lines (the default, and
 * what log collectors and the cluster's parent processes read). `human`: one readable line per log
 * event and a single live progress bar redrawn in place on a terminal. A CLI picks it once at start
 * (`setLogFormat`); it is not inherited by child processes, which keep speaking JSON to their parent.
 */
export type LogFormat = 'json' | 'human';

let format: LogFormat = process.env.SCALEOT_LOG_FORMAT === 'human' ? 'human' : 'json';

export function setLogFormat(next: LogFormat): void {
  format = next;
}

/** The environment of a worker thread of this process: it logs in the process' format (its stderr is this one's). */
export function threadEnv(): NodeJS.ProcessEnv {
  return { ...process.env, SCALEOT_LOG_FORMAT: format };
}

export function logFormat(): LogFormat {
  return format;
}

/** What a progress bar shows. */
export interface ProgressView {
  label: string;
  done: number;
  total: number;
  unit: string;
  /** Named values beside the count (loss, lr, ...). */
  fields?: Record<string, unknown>;
  etaS?: number;
}

/** Seconds as `1:05` / `1:02:05`; unknown as `?`. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A field's value as a person reads it: learning rates and tiny numbers in scientific notation. */
export function formatField(key: string, value: unknown): string {
  if (typeof value !== 'number') return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  if (/(^|_)lr$|learningRate/i.test(key) || (value !== 0 && Math.abs(value) < 1e-3) || Math.abs(value) >= 1e6) return value.toExponential(2);
  return value.toFixed(4);
}

/** One progress line: `tune [########------] 12/30 steps  loss 4.1234  lr 5.00e-5  ETA 0:42`. */
export function progressLine(view: ProgressView, width = 24): string {
  const filled = Math.min(width, Math.round((width * view.done) / Math.max(view.total, 1)));
  const fields = Object.entries(view.fields ?? {})
    .map(([k, v]) => `${k} ${formatField(k, v)}`)
    .join('  ');
  return `${view.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${view.done}/${view.total} ${view.unit}s${fields ? `  ${fields}` : ''}  ETA ${formatDuration(view.etaS)}`;
}

/**
 * The terminal's stderr shared by log lines and the one live bar: a log line clears the bar, prints,
 * and redraws it, so the two never interleave.
 */
class Terminal {
  private bar = '';

  get interactive(): boolean {
    return !!process.stderr.isTTY;
  }

  line(text: string): void {
    if (this.bar && this.interactive) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`${text}\n`);
    if (this.bar && this.interactive) process.stderr.write(this.bar);
  }

  /** Removes the live bar (its work ended without reaching its total). */
  clearBar(): void {
    if (this.bar && this.interactive) process.stderr.write('\r\x1b[2K');
    this.bar = '';
  }

  showBar(text: string, finished: boolean): void {
    const columns = process.stderr.columns ?? 120;
    const fitted = text.length > columns - 1 ? `${text.slice(0, columns - 2)}…` : text;
    if (!this.interactive) return;
    process.stderr.write(`\r\x1b[2K${fitted}`);
    this.bar = finished ? '' : fitted;
    if (finished) process.stderr.write('\n');
  }
}

export const terminal = new Terminal();

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: '', 40: 'warning', 50: 'error', 60: 'fatal' };
/** One human line for a pino record (a forwarded child record reads `worker-1: <its message>`). */
export function humanLine(record: Record<string, unknown>): string {
  const nested = record.record as Record<string, unknown> | undefined;
  if (typeof record.from === 'string' && nested && typeof nested === 'object') return humanLine({ ...nested, msg: `${record.from}: ${String(nested.msg ?? '')}` });
  const level = LEVELS[Number(record.level)] ?? '';
  const err = record.err as { message?: string } | undefined;
  const detail = err?.message && !String(record.msg ?? '').includes(err.message) ? ` (${err.message})` : '';
  return `${level ? `${level}: ` : ''}${String(record.msg ?? '')}${detail}`;
}

/** Is this pino record a progress report (drawn as the bar in human mode, not as a line)? */
export function isProgressRecord(record: Record<string, unknown>): boolean {
  return typeof record.done === 'number' && typeof record.total === 'number' && typeof record.label === 'string';
}

/** The pino destination of human mode: each JSON record becomes one line; progress records become the bar. */
export const humanDestination = {
  write(chunk: string): void {
    for (const line of chunk.split('\n')) {
      if (!line) continue;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        terminal.line(line);
        continue;
      }
      if (isProgressRecord(record)) {
        if (!terminal.interactive) terminal.line(humanLine(record));
        continue;
      }
      terminal.line(humanLine(record));
    }
  },
};
