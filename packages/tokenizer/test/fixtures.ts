import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor whose package.json declares workspaces. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && 'workspaces' in JSON.parse(readFileSync(pkg, 'utf8'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('no package.json with "workspaces" above the test file');
    dir = parent;
  }
}

/** `../shared/fixtures` relative to the repository root (override: SCALEOT_FIXTURES). */
export const fixturesDir = process.env.SCALEOT_FIXTURES ?? resolve(repoRoot(), '..', 'shared', 'fixtures');
export const tinyModelDir = join(fixturesDir, 'models', 'sotu-gpt2-tiny');
