import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repo root: the nearest ancestor whose package.json declares workspaces. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown }).workspaces) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repo root not found above the test file');
    dir = up;
  }
}

/** ../shared/fixtures relative to the repo root. */
export const FIXTURES = resolve(repoRoot(), '..', 'shared', 'fixtures');
export const modelDir = (name: 'tiny' | 'small') => join(FIXTURES, 'models', `sotu-gpt2-${name}`);

export interface ReferenceRow {
  ids: number[];
  nll: number[];
  logits: Record<string, number[]>;
}

export function referenceRows(name: 'tiny' | 'small'): ReferenceRow[] {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference-logits.json'), 'utf8')) as { models: Record<string, ReferenceRow[]> };
  return ref.models[name];
}
