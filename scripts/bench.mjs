#!/usr/bin/env node
// `npm run bench -- <name> [--json] [options]`: builds the workspace packages, then runs
// bench/<name>.mjs. A bench module exports `description` (one line), `options` (its flags) and
// `main(options)`, which prints a human table on stdout and, with --json, one JSON object as the
// last stdout line. Progress goes to stderr.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BenchUsageError, MissingExportError, parseArgs, repoRoot, usage } from '../bench/lib/common.mjs';

const benchDir = path.join(repoRoot, 'bench');
const commonOptions = {
  json: { type: 'boolean', default: false, help: 'print one JSON object as the last stdout line' },
  build: { type: 'boolean', default: true, help: 'build the packages first (--no-build to skip)' },
  help: { type: 'boolean', default: false, help: 'show this bench\'s options' },
};

function benchNames() {
  return readdirSync(benchDir)
    .filter((file) => file.endsWith('.mjs'))
    .map((file) => file.slice(0, -'.mjs'.length))
    .sort();
}

async function loadBench(name) {
  return import(pathToFileURL(path.join(benchDir, `${name}.mjs`)).href);
}

async function listBenches() {
  const lines = ['usage: npm run bench -- <name> [--json] [--no-build] [options]', '', 'benches:'];
  for (const name of benchNames()) {
    const bench = await loadBench(name);
    lines.push(`  ${name.padEnd(14)} ${bench.description ?? ''}`);
  }
  lines.push('', 'npm run bench -- <name> --help   shows a bench\'s options');
  return lines.join('\n');
}

function build() {
  process.stderr.write('[bench] building packages: npx turbo run build --output-logs=errors-only\n');
  const result = spawnSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], {
    cwd: repoRoot,
    stdio: ['ignore', process.stderr, process.stderr],
  });
  if (result.status !== 0) {
    // Other packages failing to build must not hide the numbers of the ones that did; the bench
    // reports a clear error for any export it cannot get.
    process.stderr.write(`[bench] WARNING: the build failed (exit ${result.status}); continuing with the dist/ folders that exist\n`);
  }
}

async function main(argv) {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${await listBenches()}\n`);
    return name ? 0 : 2;
  }
  if (!benchNames().includes(name)) {
    process.stderr.write(`bench: unknown bench "${name}"; available: ${benchNames().join(', ')} (npm run bench -- --help)\n`);
    return 2;
  }
  const bench = await loadBench(name);
  const spec = { ...commonOptions, ...(bench.options ?? {}) };
  let options;
  try {
    options = parseArgs(rest, spec);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`bench ${name}: ${error.message}\n\noptions:\n${usage(spec)}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${name}: ${bench.description}\n\noptions:\n${usage(spec)}\n`);
    return 0;
  }
  if (options.build) build();
  try {
    return (await bench.main(options)) ?? 0;
  } catch (error) {
    if (error instanceof BenchUsageError || error instanceof MissingExportError) {
      process.stderr.write(`bench ${name}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
