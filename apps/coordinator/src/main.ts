#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
// The coordinator process: wiring only (the job graph, stage-1 rounds and API logic live in @scaleot/cluster).
import { initBackend } from '@scaleot/backend';
import {
  clusterConfigFromEnv,
  environmentHelp,
  Coordinator,
  QueueJobRunner,
  redisConnectionOf,
  Stage1Monitor,
  runDistributedStage1,
  TenantAuth,
  type CoordinatorOptions,
} from '@scaleot/cluster';
import { createLogger, isEntryPoint, onShutdownSignals } from '@scaleot/core';
import { createMetrics } from '@scaleot/metrics';
import { JobQueue } from '@scaleot/queue';
import { ParameterPublisher, ResultCollector } from '@scaleot/transport';
import { buildServer } from './server.js';
import { operatorAuthFromEnv, registerDashboard } from './dashboard.js';

const log = createLogger('coordinator');

/** Optional JSON file (SCALEOT_COORDINATOR_CONFIG) with stage-1, tuning and evaluation settings. */
interface CoordinatorSettings {
  stage1?: Record<string, number>;
  shards?: number;
  corpus?: string;
  dataRoot?: string;
  maxDocuments?: number;
  tune?: Record<string, number>;
  eval?: Record<string, number>;
  fullFineTune?: boolean;
}

async function main(): Promise<void> {
  const config = clusterConfigFromEnv();
  const settings: CoordinatorSettings = process.env.SCALEOT_COORDINATOR_CONFIG ? JSON.parse(readFileSync(process.env.SCALEOT_COORDINATOR_CONFIG, 'utf8')) : {};
  if (!config.apiTokensFile) throw new Error('SCALEOT_API_TOKENS_FILE is not set: mount the tokens file ({"tenant": "token"}) and point the variable at it');
  const auth = TenantAuth.fromFile(config.apiTokensFile);
  const backend = await initBackend(process.env.SCALEOT_BACKEND);
  log.info({ backend }, `tfjs backend: ${backend}`);

  const connection = redisConnectionOf(config);
  const queue = new JobQueue({ connection, prefix: config.queuePrefix });
  const runner = new QueueJobRunner(queue, connection);
  const curve = config.curvePublicKey && config.curveSecretKey ? { publicKey: config.curvePublicKey, secretKey: config.curveSecretKey } : undefined;
  const publisher = await ParameterPublisher.open({ bind: `tcp://0.0.0.0:${config.paramsPort}`, curve, logger: log });
  const collector = await ResultCollector.open({ bind: `tcp://0.0.0.0:${config.resultsPort}`, curve, logger: log });
  const advertise = process.env.SCALEOT_COORDINATOR_HOST || '127.0.0.1';
  const port = (address: string) => address.slice(address.lastIndexOf(':') + 1);
  const metrics = createMetrics({ defaultLabels: { service: 'coordinator' } });
  metrics.trackQueue(queue.queue);
  const control = new JobQueue({ name: 'scaleot-control', connection, prefix: config.queuePrefix });
  metrics.trackQueue(control.queue);

  const stage1Monitor = new Stage1Monitor(config.storageDir);
  const stage1: CoordinatorOptions['stage1'] = async (modelDir, outDir, onRound) => {
    const total = settings.stage1?.steps;
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
        stage1Monitor.record(basename(modelDir), entry, total);
        onRound(entry.step, total ?? entry.step);
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
    logger: log,
  });
  const state = { ready: false, draining: false };
  const server = await buildServer({
    coordinator,
    auth,
    metrics,
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
  await registerDashboard(server, { coordinator, auth, operatorAuth: operatorAuthFromEnv(), storageDir: config.storageDir, queues: [queue.queue, control.queue], stage1: stage1Monitor, dataRoot: settings.dataRoot, evalHyper: settings.eval, defaultTuneHyper: settings.tune });
  await server.listen({ port: config.httpPort, host: process.env.SCALEOT_HTTP_HOST || '0.0.0.0' });
  await coordinator.start();
  state.ready = true;
  const address = server.server.address();
  log.info({ http: typeof address === 'object' && address ? address.port : address, params: publisher.address, results: collector.address, prefix: config.queuePrefix }, 'coordinator ready');

  onShutdownSignals(async (signal) => {
    state.draining = true;
    log.info({ signal }, 'draining: no new requests; unfinished work resumes on the next start');
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
