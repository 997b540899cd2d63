import { destination, pino, type Logger, type LoggerOptions } from 'pino';
import { humanDestination, logFormat } from './consoleOutput.js';

export type { Logger };

/**
 * The project's structured logger. JSON lines on stderr (stdout stays free for `--json` results), or
 * one human line per record when the process chose the human format (`setLogFormat`, a CLI on a
 * terminal); level from `SCALEOT_LOG_LEVEL` (default `info`; tests set `silent` or `warn`).
 */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  return pino(
    { name, level: process.env.SCALEOT_LOG_LEVEL ?? 'info', ...options },
    logFormat() === 'human' ? humanDestination : destination({ fd: 2, sync: true }),
  );
}

let rootLogger: Logger | undefined;

/** A process-wide logger, created on first use. */
export function logger(): Logger {
  rootLogger ??= createLogger('scaleot');
  return rootLogger;
}
