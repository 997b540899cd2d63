import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHART, INFRA, ROOT, listFiles, read } from './deployChecks.js';

// The apps do not exist yet: docs/deployment.md is the contract they follow, so every variable the
// deployment files set must be documented there, and every documented one must be set somewhere.
const documented = new Set(
  [...read(join(ROOT, 'docs/deployment.md')).matchAll(/^\| `(SCALEOT_[A-Z_]+)` \|/gm)].map((m) => m[1]),
);
const files = [
  join(INFRA, 'docker-compose.yml'),
  ...listFiles(join(INFRA, 'docker'), '.Dockerfile'),
  ...listFiles(join(CHART, 'templates'), ''),
];
const used = new Set(files.flatMap((f) => [...read(f).matchAll(/\b(SCALEOT_[A-Z_]+)\b/g)].map((m) => m[1])));

describe('environment contract', () => {
  it('documents every SCALEOT_* variable the images, compose file and chart set', () => {
    expect(documented.size).toBeGreaterThanOrEqual(14);
    expect([...used].filter((name) => !documented.has(name))).toEqual([]);
  });

  it('sets every documented variable somewhere', () => {
    expect([...documented].filter((name) => !used.has(name))).toEqual([]);
  });
});
