import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureModelDir, FIXTURES_DIR } from '../../../test/support/fixtures.js';

/** ../shared/fixtures relative to the repo root. */
export const FIXTURES = FIXTURES_DIR;
export const modelDir = fixtureModelDir;

export interface ReferenceRow {
  ids: number[];
  nll: number[];
  logits: Record<string, number[]>;
}

export function referenceRows(name: 'tiny' | 'small'): ReferenceRow[] {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference-logits.json'), 'utf8')) as { models: Record<string, ReferenceRow[]> };
  return ref.models[name];
}
