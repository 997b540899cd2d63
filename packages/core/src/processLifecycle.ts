import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from './logger.js';

/**
 * Whether the module at `importMetaUrl` (pass `import.meta.url`) is the script node was started with, so
 * that importing an app's main module (tools probing the package) starts nothing. Symlinks (npm bin
 * links) resolve on both sides.
 */
export function isEntryPoint(importMetaUrl: string): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(importMetaUrl));
  } catch {
    return false;
  }
}

/**
 * Runs `drain` once, on the first SIGTERM or SIGINT, then exits the process: 0 when it resolves, 1 (logged
 * as an unclean shutdown) when it rejects.
 */
export function onShutdownSignals(drain: (signal: NodeJS.Signals) => Promise<void>, logger: Logger): void {
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    drain(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
