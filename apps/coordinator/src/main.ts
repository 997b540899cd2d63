#!/usr/bin/env node
import { basename } from 'node:path';
// The coordinator process: wiring only (the job graph, stage-1 rounds and API logic live in @scaleot/cluster).
import { initBackend } from '@scaleot/backend';
import {
  coordinatorStartup,
  environmentHelp,
  exitWithProblems,
  stage1Steps,
  Coordinator,
  PlacingJobRunner,
  QueueJobRunner,
  redisConnectionOf,
  Stage1Monitor,
  runClusterStage1,
  WorkerRegistry,
  type CoordinatorOptions,
} from '@scaleot/cluster';
import { createLogger, isEntryPoint, onShutdownSignals } from '@scaleot/core';
import { createMetrics, startMetricsServer } from '@scaleot/metrics';
import { JobQueue, JobRouter } from '@scaleot/queue';
import { ParameterPublisher, ResultCollector } from '@scaleot/transport';
import { runCurveKeygen } from './curveKeygen.js';
import { buildServer } from './server.js';
import { operatorAuthFromEnv, registerDashboard } from './dashboard.js';

const log = createLogger('coordinator');

async function main(): Promise<void> {
  // Every setting is checked before anything starts: one line per problem, exit 2, no stack trace.
  const startup = await coordinatorStartup();
  if (!startup.ok) exitWithProblems('coordinator', startup.problems);
  const { config, settings, auth, curveClientKeys } = startup.value;
  const backend = await initBackend(process.env.SCALEOT_BACKEND);
  log.info({ backend }, `tfjs backend: ${backend}`);

  const connection = redisConnectionOf(config);
  // Each job kind on the queue SCALEOT_JOB_ROUTES names; worker groups consume their queues.
  const router = new JobRouter(config.jobRoutes, { connection, prefix: config.queuePrefix });
  const queue = router.queueFor('stage1.shard');
  // With SCALEOT_CURVE_CLIENT_KEYS_FILE only the listed worker keys complete the handshake (ZAP).
  const curve = config.curvePublicKey && config.curveSecretKey ? { publicKey: config.curvePublicKey, secretKey: config.curveSecretKey, allowedClientKeys: curveClientKeys } : undefined;
  const publisher = await ParameterPublisher.open({ bind: `tcp://0.0.0.0:${config.paramsPort}`, curve, logger: log });
  const collector = await ResultCollector.open({ bind: `tcp://0.0.0.0:${config.resultsPort}`, curve, logger: log });
  const advertise = process.env.SCALEOT_COORDINATOR_HOST || '127.0.0.1';
  const port = (address: string) => address.slice(address.lastIndexOf(':') + 1);
  const metrics = createMetrics({ defaultLabels: { service: 'coordinator' } });
  // Every routed queue from the start (0 when empty): KEDA scales a group at zero replicas on this gauge.
  for (const q of router.queues) metrics.trackQueue(q.queue);
  const control = new JobQueue({ name: `${queue.name}-control`, connection, prefix: config.queuePrefix });
  metrics.trackQueue(control.queue);

  const stage1Monitor = new Stage1Monitor(config.storageDir);
  // The workers' memory budgets: stage 1 runs data-parallel when the model fits one worker, else as pipeline stages.
  const registry = new WorkerRegistry({ connection, prefix: config.queuePrefix, logger: log });
  // Tuning and evaluation jobs of a model too large for one worker run here as pipeline stages.
  const runner = new PlacingJobRunner({ inner: new QueueJobRunner(router, connection), registry, stageQueue: router.queueFor('pipeline.stage'), storageDir: config.storageDir, dataRoot: settings.dataRoot, advertiseHost: config.advertiseHost, metrics, logger: log });
  const stage1: CoordinatorOptions['stage1'] = async (modelDir, outDir, onRound) => {
    // The run's own total (the settings' steps or stage 1's default), never the step just taken.
    const total = stage1Steps(settings);
    await runClusterStage1({
      registry,
      pipelineQueue: router.queueFor('pipeline.stage'),
      advertiseHost: config.advertiseHost,
      metrics,
      modelDir,
      outDir,
      storageDir: config.storageDir,
      queue,
      rolloutQueue: router.queueFor('stage1.rollout'),
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
      onStep: (entry, seconds) => {
        metrics.stage1RoundSeconds.observe(seconds);
        stage1Monitor.record(basename(modelDir), entry, total);
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
  const health = async () => {
    let redis = true;
    try {
      await queue.queue.getJobCounts('waiting');
    } catch {
      redis = false;
    }
    return { live: true, ready: state.ready && !state.draining && redis, details: { redis, draining: state.draining, params: publisher.address, results: collector.address } };
  };
  // SCALEOT_METRICS_PORT set (images, chart): /metrics on its own port, none on the API port.
  const metricsServer = process.env.SCALEOT_METRICS_PORT ? await startMetricsServer({ port: config.metricsPort, registry: metrics.registry, health }) : undefined;
  const server = await buildServer({ coordinator, auth, metrics, health, serveMetrics: !metricsServer, rateLimit: { perSecond: config.apiRatePerSecond, burst: config.apiRateBurst } });
  await registerDashboard(server, { coordinator, auth, operatorAuth: operatorAuthFromEnv(), storageDir: config.storageDir, queues: [...router.queues.map((q) => q.queue), control.queue], stage1: stage1Monitor, dataRoot: settings.dataRoot, evalHyper: settings.eval, defaultTuneHyper: settings.tune });
  await server.listen({ port: config.httpPort, host: config.httpHost });
  await coordinator.start();
  state.ready = true;
  const address = server.server.address();
  log.info({ http: typeof address === 'object' && address ? address.port : address, metrics: metricsServer?.url, routes: config.jobRoutes, params: publisher.address, results: collector.address, prefix: config.queuePrefix }, 'coordinator ready');

  onShutdownSignals(async (signal) => {
    state.draining = true;
    log.info({ signal }, 'draining: no new requests; unfinished work resumes on the next start');
    coordinator.stop();
    await server.close();
    await runner.close();
    await publisher.close();
    await collector.close();
    await control.close();
    await registry.close();
    await router.close();
    await metricsServer?.close();
  }, log);
}

/** The command line of the process: `bin/scaleot-coordinator.js` calls it, and so does dist/main.js run directly. */
export function runFromCommandLine(): void {
  if (process.argv[2] === 'curve-keygen') {
    runCurveKeygen().then(
      () => process.exit(0),
      (error: unknown) => {
        log.fatal({ err: error }, 'curve-keygen failed');
        process.exit(1);
      },
    );
  } else if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${environmentHelp('coordinator', "The ScaleOT coordinator: runs stage-1 rounds across workers (BullMQ on Redis, tensors over ZeroMQ), builds emulators, and serves data owners' tuning requests over an HTTP API (OpenAPI at /openapi.json).")}\n`);
    process.exit(0);
  } else {
    main().catch((error: unknown) => {
      log.fatal({ err: error }, 'coordinator failed to start');
      process.exit(1);
    });
  }
}

// Only as the process entry point: importing this module (tools probing the package) starts nothing.
if (isEntryPoint(import.meta.url)) runFromCommandLine();
