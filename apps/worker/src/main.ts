#!/usr/bin/env node
// The worker process: wiring only (the handlers live in @scaleot/cluster).
import { initBackend } from '@scaleot/backend';
import { ClusterWorker, environmentHelp, exitWithProblems, workerStartup } from '@scaleot/cluster';
import { createLogger, isEntryPoint, onShutdownSignals } from '@scaleot/core';

const log = createLogger('worker');

async function main(): Promise<void> {
  // Every setting is checked before anything starts: one line per problem, exit 2, no stack trace.
  const startup = await workerStartup();
  if (!startup.ok) exitWithProblems('worker', startup.problems);
  const config = startup.value;
  const backend = await initBackend(process.env.SCALEOT_BACKEND);
  log.info({ backend }, `tfjs backend: ${backend}`);
  const worker = await ClusterWorker.start({ config, queueNames: config.queueNames, logger: log });
  onShutdownSignals((signal) => {
    log.info({ signal }, 'draining: finishing the running job, taking no new ones');
    return worker.close();
  }, log);
}

/** The command line of the process: `bin/scaleot-worker.js` calls it, and so does dist/main.js run directly. */
export function runFromCommandLine(): void {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${environmentHelp('worker', 'A ScaleOT worker: loads the base model once from shared storage and runs stage-1 shard and rollout jobs, emulator builds, tuning, plug-in and evaluation jobs from the queue.')}\n`);
    process.exit(0);
  }
  main().catch((error: unknown) => {
    log.fatal({ err: error }, 'worker failed to start');
    process.exit(1);
  });
}

// Only as the process entry point: importing this module (tools probing the package) starts nothing.
if (isEntryPoint(import.meta.url)) runFromCommandLine();
