import { existsSync, readdirSync, statSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { ScaleotError } from '@scaleot/core';

export interface OutputGuardOptions {
  /** --overwrite: an existing output is replaced at the end. */
  overwrite?: boolean;
  /** Entries that may be there already because the command resumes from them (a checkpoint directory). */
  resumable?: string[];
  /** The flag named in the message. Default `--out`. */
  flag?: string;
}

/**
 * Refuses an existing, non-empty output before any compute: without it a command trains to the end and
 * only then finds it may not write (OUTPUT_EXISTS after all the steps). Called first thing by every
 * command that writes an output directory; resuming is allowed where the command resumes.
 */
export function refuseExistingOutput(dir: string, options: OutputGuardOptions = {}): void {
  if (options.overwrite) return;
  const out = resolve(dir);
  if (!existsSync(out)) return;
  const flag = options.flag ?? '--out';
  if (!statSync(out).isDirectory()) throw new ScaleotError('OUTPUT_EXISTS', `${out} exists and is not a directory; choose another ${flag}`, { where: flag });
  const allowed = new Set((options.resumable ?? []).map((p) => relative(out, resolve(p)).split('/')[0]).filter((p) => p && !p.startsWith('..')));
  const present = readdirSync(out).filter((name) => !allowed.has(name));
  if (present.length > 0) {
    throw new ScaleotError(
      'OUTPUT_EXISTS',
      `${out} already holds ${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''}; choose another ${flag} or pass --overwrite (nothing was computed)`,
      { where: flag },
    );
  }
}
