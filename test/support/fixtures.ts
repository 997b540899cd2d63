// Where package and integration tests find the repository and the shared fixtures.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of this file whose package.json declares workspaces. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && 'workspaces' in JSON.parse(readFileSync(pkg, 'utf8'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('no package.json with "workspaces" above the test support files');
    dir = parent;
  }
}

export const REPO_ROOT = findRepoRoot();
/** `../shared` relative to the repository root. */
export const SHARED_DIR = resolve(REPO_ROOT, '..', 'shared');
/** `../shared/fixtures` relative to the repository root (override: SCALEOT_FIXTURES). */
export const FIXTURES_DIR = process.env.SCALEOT_FIXTURES ?? join(SHARED_DIR, 'fixtures');
/** The owner corpora (`<fixtures>/data`), a dataRoot for built-in task names. */
export const FIXTURE_DATA_DIR = join(FIXTURES_DIR, 'data');

/** A fixture model (HF dir): `sotu-gpt2-tiny` or `sotu-gpt2-small`. */
export function fixtureModelDir(name: 'tiny' | 'small'): string {
  return join(FIXTURES_DIR, 'models', `sotu-gpt2-${name}`);
}
