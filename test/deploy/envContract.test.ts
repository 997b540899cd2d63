import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHART, INFRA, ROOT, listFiles, read } from './deployChecks.js';

// docs/deployment.md's environment contract is what operators read: every variable the deployment
// files set is in its table, every table row is set somewhere, and every SCALEOT_* variable the shipped
// code reads is described there (the table, or the list of optional settings below it).
const deployment = read(join(ROOT, 'docs/deployment.md'));
const start = deployment.indexOf('## Environment contract');
const contract = deployment.slice(start, deployment.indexOf('\n## ', start + 1));
const documented = new Set([...contract.matchAll(/^\| `(SCALEOT_[A-Z_]+)` \|/gm)].map((m) => m[1]));
/** Table rows, and the optional settings' items: "- `SCALEOT_A` / `SCALEOT_B` (who, default ...): ...". */
const described = new Set([
  ...documented,
  ...[...contract.matchAll(/^- ((?:`SCALEOT_[A-Z_]+` \/ )*`SCALEOT_[A-Z_]+`) \(/gm)].flatMap((m) => [...m[1].matchAll(/SCALEOT_[A-Z_]+/g)].map((n) => n[0])),
]);

const files = [
  join(INFRA, 'docker-compose.yml'),
  ...listFiles(join(INFRA, 'docker'), '.Dockerfile'),
  ...listFiles(join(CHART, 'templates'), ''),
];
const used = new Set(files.flatMap((f) => [...read(f).matchAll(/\b(SCALEOT_[A-Z_]+)\b/g)].map((m) => m[1])));

/** Each SCALEOT_* name the shipped code (packages/*\/src, apps/*\/src; not tests, benches or scripts) mentions, with one file that does. */
function namesInCode(): Map<string, string> {
  const names = new Map<string, string>();
  for (const root of ['packages', 'apps']) {
    for (const pkg of readdirSync(join(ROOT, root))) {
      const src = join(ROOT, root, pkg, 'src');
      let entries;
      try {
        entries = readdirSync(src, { withFileTypes: true, recursive: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isFile() || !/\.(ts|tsx|mts)$/.test(e.name)) continue;
        const file = join(e.parentPath, e.name);
        for (const m of read(file).matchAll(/\bSCALEOT_[A-Z_]+\b/g)) if (!names.has(m[0])) names.set(m[0], file.slice(ROOT.length + 1));
      }
    }
  }
  return names;
}

describe('environment contract', () => {
  it('documents every SCALEOT_* variable the images, compose file and chart set', () => {
    expect(documented.size).toBeGreaterThanOrEqual(14);
    expect([...used].filter((name) => !documented.has(name))).toEqual([]);
  });

  it('sets every documented variable somewhere', () => {
    expect([...documented].filter((name) => !used.has(name))).toEqual([]);
  });

  it('describes every SCALEOT_* variable the code reads', () => {
    const inCode = namesInCode();
    expect(inCode.size).toBeGreaterThanOrEqual(30); // the scan found the sources
    expect(inCode.has('SCALEOT_THREADS')).toBe(true);
    const missing = [...inCode].filter(([name]) => !described.has(name)).map(([name, file]) => `${name} (${file})`);
    expect(missing).toEqual([]);
  });
});
