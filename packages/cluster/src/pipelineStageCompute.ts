// The body of a `pipeline.stage` job: runs inside a compute thread (ComputeExecutor), so the worker's
// event loop keeps renewing the job's lock while this stage computes. It holds its sockets itself:
// activations go from this thread straight to the next stage's thread, never through the coordinator.
import { createLogger } from '@scaleot/core';
import { loadStage, type ComputeTaskContext } from '@scaleot/model';
import type { JobPayload } from '@scaleot/queue';
import { PipelineInbox, PipelineOutbox, TensorSet, type JsonValue } from '@scaleot/transport';
import * as tf from '@tensorflow/tfjs';
import { resolveArtifact } from './clusterConfig.js';
import { peakRssBytes } from './peakRss.js';
import { ClusterError } from './ClusterError.js';

export interface PipelineStageArgs {
  storageDir: string;
  payload: JobPayload<'pipeline.stage'>;
  /** Host the inbox binds (`0.0.0.0` in a pod, `127.0.0.1` on one machine). */
  bindHost: string;
  /** Host the other stages reach this one at (the pod IP). */
  advertiseHost: string;
  /** No message for this long ends the stage with TIMEOUT (a coordinator that died). */
  idleTimeoutMs: number;
  /** No route this long after reporting ready ends the stage at once (a run already abandoned: a stage job re-run after its first worker died). Default 300000. */
  routeTimeoutMs?: number;
}

/** One stage's figures, appended to every message it forwards and returned when it ends. */
export interface StageStats {
  stage: number;
  blocks: [number, number];
  /** Compute seconds of the last micro-batch here. */
  stepSeconds: number;
  /** Peak resident memory of this worker process so far (bytes). */
  peakRssBytes: number;
  /** Micro-batches computed. */
  steps: number;
  computeSeconds: number;
  bytesSent: number;
  bytesReceived: number;
  /** Activation bytes received from the previous stage, and the seconds they took on the wire (from the sender's send to whole receipt, counted from when this stage was already waiting). */
  hopBytes: number;
  hopSeconds: number;
}

const log = createLogger('cluster.pipeline-stage');
const peakRss = () => peakRssBytes();
/** Wall-clock ms with sub-ms precision, comparable across the processes of one machine (and NTP-synced ones). */
const wallMs = () => performance.timeOrigin + performance.now();

export async function pipelineStageJob(args: PipelineStageArgs, ctx: ComputeTaskContext): Promise<StageStats & { loadSeconds: number; bytesRead: number }> {
  const { payload } = args;
  const index = payload.stageIndex;
  const last = index === payload.stageCount - 1;
  const loadStarted = performance.now();
  const { stage, bytesRead } = await loadStage(resolveArtifact(args.storageDir, payload.model), { from: payload.fromBlock, to: payload.toBlock }, { trainable: false });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const inbox = await PipelineInbox.bind(`tcp://${args.bindHost}:*`, args.advertiseHost, { receiveTimeoutMs: args.routeTimeoutMs ?? 300_000 });
  const control = PipelineOutbox.connect(payload.controlAddress);
  let next: PipelineOutbox | undefined;
  const stats: StageStats = { stage: index, blocks: [payload.fromBlock, payload.toBlock], stepSeconds: 0, peakRssBytes: peakRss(), steps: 0, computeSeconds: 0, bytesSent: 0, bytesReceived: 0, hopBytes: 0, hopSeconds: 0 };
  const statsJson = () => ({ ...stats, bytesSent: next?.bytesSent ?? 0, bytesReceived: inbox.bytesReceived, peakRssBytes: peakRss() }) as unknown as JsonValue;
  try {
    await control.send({ header: { type: 'ready', runId: payload.runId, stage: index, address: inbox.address, bytesRead, loadSeconds, peakRssBytes: peakRss() }, tensors: new TensorSet() });
    ctx.progress({ stage: index, phase: 'ready', address: inbox.address });
    log.info({ runId: payload.runId, stage: index, blocks: [payload.fromBlock, payload.toBlock], address: inbox.address, bytesRead, loadSeconds }, 'pipeline stage loaded');
    for (;;) {
      const waitingSince = wallMs();
      const message = await inbox.receive();
      const receivedAt = wallMs();
      const { header } = message;
      if (header.runId !== payload.runId) continue;
      if (header.type === 'abort') {
        // The coordinator gave this run up (another stage died): free the worker for the next plan.
        log.warn({ runId: payload.runId, stage: index, reason: header.reason }, 'pipeline run aborted');
        break;
      }
      if (header.type === 'route') {
        inbox.setReceiveTimeout(args.idleTimeoutMs);
        const addresses = header.addresses as string[];
        next = last ? control : PipelineOutbox.connect(addresses[index + 1]);
        if (!last) await next.send({ header, tensors: new TensorSet() });
        continue;
      }
      if (!next) throw new ClusterError('PIPELINE_FAILED', `stage ${index} got "${header.type}" before its route`, { where: 'pipeline.stage' });
      if (header.type === 'end') {
        // The end marker collects every stage's final figures on its way to the coordinator.
        await next.send({ header: { ...header, stats: [...((header.stats as JsonValue[]) ?? []), statsJson()] }, tensors: new TensorSet() });
        break;
      }
      if (header.type !== 'batch') throw new ClusterError('PIPELINE_FAILED', `stage ${index} cannot handle a "${header.type}" message`, { where: 'pipeline.stage' });
      if (!stage.first && typeof header.sentAt === 'number') {
        stats.hopBytes += message.bytes;
        stats.hopSeconds += Math.max(0, receivedAt - Math.max(header.sentAt, waitingSince)) / 1000;
      }
      const ids = message.tensors.require('ids');
      const [rows, length] = ids.shape;
      const started = performance.now();
      const out = tf.tidy(() => {
        const all = tf.tensor2d(ids.data as Int32Array, [rows, length], 'int32');
        const input = stage.first ? tf.slice(all, [0, 0], [rows, length - 1]) : tf.tensor3d(message.tensors.require('hidden').data as Float32Array, message.tensors.require('hidden').shape as [number, number, number]);
        const h = stage.forward(input);
        return last ? stage.tokenNll(h, tf.slice(all, [0, 1], [rows, length - 1]) as tf.Tensor2D) : h;
      });
      const values = (await out.data()) as Float32Array;
      const shape = out.shape;
      out.dispose();
      stats.stepSeconds = (performance.now() - started) / 1000;
      stats.computeSeconds += stats.stepSeconds;
      stats.steps++;
      const trail = [...((header.stats as JsonValue[]) ?? []), statsJson()];
      const tensors = new TensorSet();
      if (last) tensors.add('nll', values, shape);
      else tensors.add('ids', ids.data, ids.shape, 'I32').add('hidden', values, shape);
      await next.send({ header: { type: last ? 'nll' : 'batch', runId: payload.runId, id: header.id, stats: trail, sentAt: wallMs() }, tensors });
    }
    const final = { ...stats, bytesSent: next?.bytesSent ?? 0, bytesReceived: inbox.bytesReceived, peakRssBytes: peakRss(), loadSeconds, bytesRead };
    log.info({ runId: payload.runId, ...final }, 'pipeline stage done');
    return final;
  } finally {
    if (next && next !== control) next.close();
    control.close();
    inbox.close();
    stage.dispose();
  }
}
