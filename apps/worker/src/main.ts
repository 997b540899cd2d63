#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
// The worker process: wiring only (the handlers live in @scaleot/cluster).
import { initBackend } from '@scaleot/backend';
import { ClusterWorker, clusterConfigFromEnv, environmentHelp } from '@scaleot/cluster';
import { createLogger } from '@scaleot/core';

const log = createLogger('worker');

async function main(): Promise<void> {
  const config = clusterConfigFromEnv();
  const backend = await initBackend(process.env.SCALEOT_BACKEND);
  log.info({ backend }, `tfjs backend: ${backend}`);
  const worker = await ClusterWorker.start({ config, queueName: process.env.SCALEOT_QUEUE_NAME || 'scaleot', logger: log });
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'draining: finishing the running job, taking no new ones');
    worker.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

// Only as the process entry point: importing this module (tools probing the package) starts nothing.
if (isEntryPoint()) {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${environmentHelp('worker', 'A ScaleOT worker: loads the base model once from shared storage and runs stage-1 shard and rollout jobs, emulator builds, tuning, plug-in and evaluation jobs from the queue.')}\n`);
    process.exit(0);
  }
  main().catch((error: unknown) => {
    log.fatal({ err: error }, 'worker failed to start');
    process.exit(1);
  });
}

function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
