#!/usr/bin/env node
// The coordinator process: wiring only (the job graph, stage-1 rounds and API logic live in @scaleot/cluster).
import { initBackend } from '@scaleot/backend';
import {
  coordinatorStartup,
  environmentHelp,
  exitWithProblems,
  stage1Steps,
  Coordinator,
  QueueJobRunner,
  redisConnectionOf,
  runDistributedStage1,
  type CoordinatorOptions,
} from '@scaleot/cluster';
import { createLogger, isEntryPoint, onShutdownSignals } from '@scaleot/core';
import { createMetrics } from '@scaleot/metrics';
import { JobQueue } from '@scaleot/queue';
import { ParameterPublisher, ResultCollector } from '@scaleot/transport';
import { buildServer } from './server.js';

const log = createLogger('coordinator');

async function main(): Promise<void> {
  // Every setting is checked before anything starts: one line per problem, exit 2, no stack trace.
  const startup = await coordinatorStartup();
  if (!startup.ok) exitWithProblems('coordinator', startup.problems);
  const { config, settings, auth, curveClientKeys } = startup.value;
  const backend = await initBackend(process.env.SCALEOT_BACKEND);
  log.info({ backend }, `tfjs backend: ${backend}`);

  const connection = redisConnectionOf(config);
  const queue = new JobQueue({ connection, prefix: config.queuePrefix });
  const runner = new QueueJobRunner(queue, connection);
  // With SCALEOT_CURVE_CLIENT_KEYS_FILE only the listed worker keys complete the handshake (ZAP).
  const curve = config.curvePublicKey && config.curveSecretKey ? { publicKey: config.curvePublicKey, secretKey: config.curveSecretKey, allowedClientKeys: curveClientKeys } : undefined;
  const publisher = await ParameterPublisher.open({ bind: `tcp://0.0.0.0:${config.paramsPort}`, curve, logger: log });
  const collector = await ResultCollector.open({ bind: `tcp://0.0.0.0:${config.resultsPort}`, curve, logger: log });
  const advertise = process.env.SCALEOT_COORDINATOR_HOST || '127.0.0.1';
  const port = (address: string) => address.slice(address.lastIndexOf(':') + 1);
  const metrics = createMetrics({ defaultLabels: { service: 'coordinator' } });
  metrics.trackQueue(queue.queue);
  const control = new JobQueue({ name: 'scaleot-control', connection, prefix: config.queuePrefix });
  metrics.trackQueue(control.queue);

  const stage1: CoordinatorOptions['stage1'] = async (modelDir, outDir, onRound) => {
    // The run's own total (the settings' steps or stage 1's default), never the step just taken.
    const total = stage1Steps(settings);
    await runDistributedStage1({
      modelDir,
      outDir,
      storageDir: config.storageDir,
      queue,
      connection,
      publisher,
      collector,
      paramsAddress: `tcp://${advertise}:${port(publisher.address)}`,
      resultAddress: `tcp://${advertise}:${port(collector.address)}`,
      shards: settings.shards ?? 2,
      corpus: settings.corpus,
      dataRoot: settings.dataRoot,
      maxDocuments: settings.maxDocuments,
      ...settings.stage1,
      logger: log,
      onStep: (entry, timing) => {
        metrics.stage1RoundSeconds.observe(timing.seconds);
        onRound(entry.step, total);
      },
    });
  };
  const coordinator = new Coordinator({
    storageDir: config.storageDir,
    runner,
    stage1,
    defaultTuneHyper: settings.tune,
    evalHyper: settings.eval,
    fullFineTune: settings.fullFineTune,
    stage1AdapterBlocks: settings.stage1?.nAdapter,
    quotas: { maxActiveRequests: config.maxActiveRequests, maxStorageBytes: config.maxStorageBytes },
    retentionMs: config.retentionHours * 3600_000,
    logger: log,
  });
  const state = { ready: false, draining: false };
  const server = await buildServer({
    coordinator,
    auth,
    metrics,
    rateLimit: { perSecond: config.apiRatePerSecond, burst: config.apiRateBurst },
    health: async () => {
      let redis = true;
      try {
        await queue.queue.getJobCounts('waiting');
      } catch {
        redis = false;
      }
      return { live: true, ready: state.ready && !state.draining && redis, details: { redis, draining: state.draining, params: publisher.address, results: collector.address } };
    },
  });
  await server.listen({ port: config.httpPort, host: config.httpHost });
  await coordinator.start();
  state.ready = true;
  const address = server.server.address();
  log.info({ http: typeof address === 'object' && address ? address.port : address, params: publisher.address, results: collector.address, prefix: config.queuePrefix }, 'coordinator ready');

  onShutdownSignals(async (signal) => {
    state.draining = true;
    log.info({ signal }, 'draining: no new requests; unfinished work resumes on the next start');
    coordinator.stop();
    await server.close();
    await runner.close();
    await publisher.close();
    await collector.close();
    await control.close();
    await queue.close();
  }, log);
}

// Only as the process entry point: importing this module (tools probing the package) starts nothing.
if (isEntryPoint(import.meta.url)) {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${environmentHelp('coordinator', "The ScaleOT coordinator: runs stage-1 rounds across workers (BullMQ on Redis, tensors over ZeroMQ), builds emulators, and serves data owners' tuning requests over an HTTP API (OpenAPI at /openapi.json).")}\n`);
    process.exit(0);
  }
  main().catch((error: unknown) => {
    log.fatal({ err: error }, 'coordinator failed to start');
    process.exit(1);
  });
}
