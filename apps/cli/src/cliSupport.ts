import { ScaleotError, createLogger, setLogFormat, type LogFormat, type Logger } from '@scaleot/core';
import { Command, InvalidArgumentError, Option } from 'commander';

/** Options every command accepts. */
export interface GlobalOptions {
  json?: boolean;
  logLevel?: string;
  /** `human` (one line per event and a live bar) or `json` (pino). Default: json with --json or when stdout is not a terminal, else human. */
  logFormat?: LogFormat;
  backend?: string;
}

/** Adds `--json`, `--log-level` and `--backend` to a command. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON object with the result as the last line of stdout')
    .addOption(new Option('--log-format <format>', 'stderr logs: human lines and a live progress bar, or pino JSON (default: json with --json or when stdout is not a terminal, else human)').choices(['human', 'json']))
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default(process.env.SCALEOT_LOG_LEVEL ?? 'info'))
    .addOption(new Option('--backend <name>', 'tfjs backend (webgpu: Dawn; auto: a GPU adapter, else native tensorflow when installed, else wasm; wasm runs its matmuls on OpenBLAS when @scaleot/blas was built, SCALEOT_NATIVE_GEMM=0 turns that off)').choices(['wasm', 'cpu', 'tensorflow', 'webgpu', 'auto']).default(process.env.SCALEOT_BACKEND ?? 'wasm'));
}

/** Parses a comma-separated list of non-negative integers ("0,1,10,11"). */
export function intList(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const out = parts.map(Number);
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`expected comma-separated block indices like "0,1,10,11", got "${value}"`);
  }
  return out;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}

export function finiteNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
  return n;
}

/** The log format a command run gets: the flag, else JSON for machines (--json, stdout not a terminal), else human. */
export function chooseLogFormat(opts: Pick<GlobalOptions, 'json' | 'logFormat'>, stdoutIsTerminal = !!process.stdout.isTTY): LogFormat {
  if (opts.logFormat) return opts.logFormat;
  return opts.json || !stdoutIsTerminal ? 'json' : 'human';
}

/**
 * Runs a command body with a logger and the environment its options ask for; prints its result
 * (JSON as the last stdout line with --json, else the human text) and turns a ScaleotError into a
 * one-line message and exit code 2 instead of a stack trace.
 */
export async function runCommand<T = unknown>(
  name: string,
  opts: GlobalOptions,
  body: (log: Logger) => Promise<{ result: T; human: string }>,
): Promise<void> {
  process.env.SCALEOT_LOG_LEVEL = opts.logLevel ?? process.env.SCALEOT_LOG_LEVEL ?? 'info';
  setLogFormat(chooseLogFormat(opts));
  if (opts.backend) process.env.SCALEOT_BACKEND = opts.backend;
  const log = createLogger(`scaleot.${name}`);
  try {
    const { result, human } = await body(log);
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`${human}\n`);
  } catch (err) {
    if (err instanceof ScaleotError) {
      const line = `scaleot ${name}: ${err.message} [${err.code}]`;
      log.error({ code: err.code, where: err.where }, line);
      // Logged above once, in the chosen format; a silenced log still says why the command failed.
      if (!log.isLevelEnabled('error')) process.stderr.write(`${line}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}

/**
 * `@scaleot/offsite` with every emulator block kind this distribution ships registered (ScaleOT's
 * harmonizers and factored SRC blocks come from `@scaleot/scaleot`, which offsite cannot import):
 * every command that loads an emulator someone else built imports offsite through here.
 */
export async function importOffsite(): Promise<typeof import('@scaleot/offsite')> {
  await import('@scaleot/scaleot');
  return import('@scaleot/offsite');
}
