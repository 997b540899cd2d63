// Shared helpers for the benches: argument parsing, paths, statistics, tables, stderr logging and
// importing the built @scaleot packages with a useful message when something is not there yet.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `--name value`, `--name=value` and bare `--flag` (true); `--no-flag` gives false. */
export function parseArgs(argv, spec) {
  const options = {};
  for (const [name, { default: value }] of Object.entries(spec)) options[name] = value;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new BenchUsageError(`unexpected argument "${arg}"`);
    let [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    let negated = false;
    if (!(name in spec) && name.startsWith('no-') && name.slice(3) in spec) {
      name = name.slice(3);
      negated = true;
    }
    const entry = spec[name];
    if (!entry) throw new BenchUsageError(`unknown option --${name}`);
    if (entry.type === 'boolean') {
      options[name] = negated ? false : inline === undefined ? true : inline !== 'false';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new BenchUsageError(`--${name} needs a value`);
    if (entry.type === 'number') {
      const number = Number(raw);
      if (!Number.isFinite(number)) throw new BenchUsageError(`--${name} must be a number, got "${raw}"`);
      options[name] = number;
    } else {
      options[name] = raw;
    }
  }
  return options;
}

export function usage(spec) {
  return Object.entries(spec)
    .map(([name, entry]) => {
      const flag = entry.type === 'boolean'
        ? entry.default === true ? `--[no-]${name}` : `--${name}`
        : `--${name} <${entry.type === 'number' ? 'n' : 'value'}>`;
      const fallback = entry.default === undefined || entry.type === 'boolean' ? '' : ` (default ${entry.default})`;
      return `  ${flag.padEnd(24)} ${entry.help}${fallback}`;
    })
    .join('\n');
}

export class BenchUsageError extends Error {}

/** `../shared/fixtures` relative to the repo root unless `--fixtures DIR` says otherwise. */
export function fixturesDir(option) {
  const dir = path.resolve(option ?? path.join(repoRoot, '..', 'shared', 'fixtures'));
  if (!existsSync(dir)) {
    throw new BenchUsageError(`fixtures directory ${dir} does not exist; pass --fixtures DIR`);
  }
  return dir;
}

/**
 * The models the shipped-loop benches run on (`--model NAME`), each with the uniform LayerDrop emulator
 * its experiments use: the tiny GPT-2 of the offsite-tuning baseline, and the deep LLaMA of the families
 * issue (adapters 0,1,22,23; 10 of the 20 middle blocks kept, as `scaleot report --method uniform` keeps them).
 */
export const BENCH_MODELS = {
  tiny: { dir: 'sotu-gpt2-tiny', label: 'tiny GPT-2', adapters: [0, 1, 10, 11], drop: [3, 5, 7, 9] },
  'llama-24l': { dir: 'sotu-llama-24l', label: 'sotu-llama-24l', adapters: [0, 1, 22, 23], drop: [3, 5, 7, 9, 11, 12, 14, 16, 18, 20] },
};

export const modelOption = {
  model: { type: 'string', default: 'tiny', help: `bench model: ${Object.keys(BENCH_MODELS).join(' | ')}` },
};

/** The `--model` entry with its directory under the fixtures. */
export function benchModel(name, fixtures) {
  const entry = BENCH_MODELS[name];
  if (!entry) throw new BenchUsageError(`--model ${name} is not a bench model; choose one of ${Object.keys(BENCH_MODELS).join(', ')}`);
  return { ...entry, name, modelDir: path.join(fixtures, 'models', entry.dir) };
}

export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return 'n/a';
  if (typeof value !== 'number') return String(value);
  if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toExponential(2);
  return value.toFixed(digits);
}

/** A plain left-aligned text table. */
export function table(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => row[c]?.length ?? 0)));
  const line = (row) => row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/**
 * mulberry32: a tiny seeded uint32 generator, mirrored in tools/pytorch/gpt2_step.py so both sides
 * of a comparison build the same token batch.
 */
export function mulberry32(seed) {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** `batch × seq` ids in [0, vocab): floor(u32 · vocab / 2^32), as the Python side computes it. */
export function randomTokenBatch(seed, batch, seq, vocab) {
  const next = mulberry32(seed);
  const ids = new Int32Array(batch * seq);
  for (let i = 0; i < ids.length; i++) ids[i] = Number((BigInt(next()) * BigInt(vocab)) >> 32n);
  return ids;
}

/**
 * Import a built workspace package and check that it exports what the bench uses. Throws a
 * MissingExportError naming the package, the export and how to fix it.
 */
export async function importPackage(name, exports) {
  let module;
  try {
    module = await import(name);
  } catch (error) {
    throw new MissingExportError(
      `${name} could not be imported (${error.code ?? error.message}); build it with \`npx turbo run build\``,
    );
  }
  const missing = exports.filter((key) => module[key] === undefined);
  if (missing.length > 0) {
    throw new MissingExportError(
      `${name} does not export ${missing.join(', ')} (yet): check packages/${name.split('/')[1]}/src/index.ts and rebuild`,
    );
  }
  return module;
}

export class MissingExportError extends Error {}

/** Prints the result object as the last stdout line when `--json` was given. */
export function emitJson(enabled, result) {
  if (enabled) process.stdout.write(`${JSON.stringify(result)}\n`);
}
