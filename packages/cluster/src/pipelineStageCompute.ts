// The body of a `pipeline.stage` job: runs inside a compute thread (ComputeExecutor), so the worker's
// event loop keeps renewing the job's lock while this stage computes. It holds its sockets itself:
// activations go from this thread straight to the next stage's thread, and gradients straight back to
// the previous one, never through the coordinator.
//
// Messages (PipelineSession is the other side):
//   coordinator → every stage: `route` (the stages' addresses, forwarded down the chain), `params`
//     (versioned: the stage's harmonizers, and the weights being trained, which the backward pass then
//     differentiates), `collect` (send the step's summed gradients), `abort`;
//   along the chain: `batch` (token rows and their loss mask, plus the hidden state after stage 0; with
//     a mask, harmonizers stand in for blocks; with `train`, the stages keep their inputs for the
//     backward pass), `end`;
//   back along the chain: `grad` (the loss's gradient w.r.t. the receiving stage's output);
//   stage → coordinator: `ready`, `nll` (last stage, forward batches), `backward-done` (the lowest
//     stage that needs a gradient, train batches), `grads` (answer to `collect`), `end`.
import { createLogger } from '@scaleot/core';
import type { ComputeTaskContext } from '@scaleot/model';
import { loadPipelineStage } from '@scaleot/offsite';
import type { JobPayload } from '@scaleot/queue';
import { stageBackward, stageMaskedForward, syncHarmonizers, type Harmonizer, type StageRoundSettings } from '@scaleot/scaleot';
import { PipelineInbox, PipelineOutbox, TensorSet, type JsonValue, type PipelineMessage } from '@scaleot/transport';
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

/** What a `train` batch asks of the stages besides the mask (see StageRoundSettings), and where the backward pass stops. */
export interface StageTrainHeader extends Omit<StageRoundSettings, 'mask'> {
  /** The lowest stage that holds an active harmonizer: stages below it need no gradient. */
  lowest: number;
}

interface SavedInput {
  input: tf.Tensor;
  targets?: tf.Tensor2D;
  lossMask?: tf.Tensor2D;
  settings: StageRoundSettings;
  lowest: number;
}

/** The step's gradients so far on this stage, summed as the micro-batches' backward passes finish. */
interface StepGradients {
  grads: Map<string, tf.Tensor>;
  nllSum: number;
  /** Σ rows × this stage's share of the alignment term. */
  alignSum: number;
  microBatches: number;
  lastId: number;
}

const emptyStep = (): StepGradients => ({ grads: new Map(), nllSum: 0, alignSum: 0, microBatches: 0, lastId: -1 });

export async function pipelineStageJob(args: PipelineStageArgs, ctx: ComputeTaskContext): Promise<StageStats & { loadSeconds: number; bytesRead: number }> {
  const { payload } = args;
  const index = payload.stageIndex;
  const last = index === payload.stageCount - 1;
  const loadStarted = performance.now();
  const { stage, bytesRead } = await loadPipelineStage(resolveArtifact(args.storageDir, payload.model), { from: payload.fromBlock, to: payload.toBlock }, { trainable: false });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const inbox = await PipelineInbox.bind(`tcp://${args.bindHost}:*`, args.advertiseHost, { receiveTimeoutMs: args.routeTimeoutMs ?? 300_000 });
  const control = PipelineOutbox.connect(payload.controlAddress);
  const links: { next?: PipelineOutbox; previous?: PipelineOutbox } = {};
  const stats: StageStats = { stage: index, blocks: [payload.fromBlock, payload.toBlock], stepSeconds: 0, peakRssBytes: peakRss(), steps: 0, computeSeconds: 0, bytesSent: 0, bytesReceived: 0, hopBytes: 0, hopSeconds: 0 };
  const bytesSent = () => (links.next?.bytesSent ?? 0) + (links.previous?.bytesSent ?? 0);
  const statsJson = () => ({ ...stats, bytesSent: bytesSent(), bytesReceived: inbox.bytesReceived, peakRssBytes: peakRss() }) as unknown as JsonValue;
  // Stage 1: this stage's harmonizers (the coordinator's copy, sent each phase, versioned).
  const harmonizers = new Map<number, Harmonizer>();
  // Tuning and full fine-tuning: the weights the coordinator trains (sent each step, versioned).
  const weights = stage.namedWeights();
  const trained = new Map<string, tf.Variable>();
  let paramsVersion = -1;
  const deferred: PipelineMessage[] = [];
  // Each train micro-batch's input, kept from its forward pass to its backward pass.
  const saved = new Map<number, SavedInput>();
  // One running sum, not one gradient set per micro-batch: a stage's gradients take its weights' bytes
  // once. Backward passes run in micro-batch order on every stage (each hop is one FIFO), so the sum
  // is the single-process one, in its order.
  let step = emptyStep();
  const timed = <T>(work: () => T): T => {
    const started = performance.now();
    const out = work();
    stats.stepSeconds = (performance.now() - started) / 1000;
    stats.computeSeconds += stats.stepSeconds;
    stats.steps++;
    return out;
  };

  /** A `batch` message: forward through this stage (keeping the input of a train batch), then on or back. */
  const forward = async (message: PipelineMessage): Promise<void> => {
    const { header } = message;
    const ids = message.tensors.require('ids');
    const [rows, length] = ids.shape;
    const mask = header.mask as number[] | undefined;
    const train = header.train as unknown as StageTrainHeader | undefined;
    const all = tf.tensor2d(ids.data as Int32Array, [rows, length], 'int32');
    const input = stage.first ? tf.slice(all, [0, 0], [rows, length - 1]) : tf.tensor3d(message.tensors.require('hidden').data as Float32Array, message.tensors.require('hidden').shape as [number, number, number]);
    const targets = last ? (tf.slice(all, [0, 1], [rows, length - 1]) as tf.Tensor2D) : undefined;
    all.dispose();
    const maskTensor = message.tensors.get('lossMask');
    const lossMask = last && maskTensor ? tf.tensor2d(maskTensor.data as Float32Array, maskTensor.shape as [number, number]) : undefined;
    const id = header.id as number;
    if (train && last) {
      // The last stage turns straight round: the backward pass's own recomputation is its forward.
      saved.set(id, { input, targets, lossMask, settings: { ...train, mask: mask ?? [] }, lowest: train.lowest });
      await backward(id, undefined);
      return;
    }
    const out = timed(() =>
      tf.tidy(() => {
        const h = mask ? stageMaskedForward(stage, harmonizers, mask, input) : stage.forward(input);
        return last ? stage.tokenNll(h, targets!) : h;
      }),
    );
    if (train && index >= train.lowest) saved.set(id, { input, settings: { ...train, mask: mask ?? [] }, lowest: train.lowest });
    else input.dispose();
    lossMask?.dispose();
    const values = (await out.data()) as Float32Array;
    const shape = out.shape;
    // Σ NLL as the single-process rollout sums it (one float32 reduction), for stage-1 rollouts.
    const nllSum = last ? tf.tidy(() => tf.sum(out).dataSync()[0]) : undefined;
    out.dispose();
    targets?.dispose();
    const stamp = { runId: payload.runId, id, stats: [...((header.stats as JsonValue[]) ?? []), statsJson()], sentAt: wallMs() };
    if (last) {
      await control.send({ header: { type: 'nll', ...stamp, nllSum: nllSum! }, tensors: new TensorSet().add('nll', values, shape) });
    } else {
      // Mask, version, train settings, ids and loss mask travel on with the batch.
      const onward = new TensorSet();
      for (const [name, t] of message.tensors) if (name !== 'hidden') onward.set(name, t);
      await links.next!.send({ header: { ...header, type: 'batch', ...stamp }, tensors: onward.add('hidden', values, shape) });
    }
  };

  /** Recomputes micro-batch `id` under a tape and sends the input's gradient back (or says it is done). */
  const backward = async (id: number, upstream: tf.Tensor3D | undefined): Promise<void> => {
    const kept = saved.get(id);
    if (!kept) throw new ClusterError('PIPELINE_FAILED', `stage ${index} got the gradient of micro-batch ${id}, which it never saw forward`, { where: 'pipeline.stage' });
    saved.delete(id);
    const needInput = index > kept.lowest;
    const result = timed(() => stageBackward(stage, harmonizers, kept.settings, { input: kept.input, targets: kept.targets, lossMask: kept.lossMask, upstream, inputGrad: needInput, weights: trained }));
    tf.dispose([kept.input, kept.targets, kept.lossMask, upstream].filter((t): t is tf.Tensor => t !== undefined));
    if (id < step.lastId) throw new ClusterError('PIPELINE_FAILED', `stage ${index} got the gradient of micro-batch ${id} after ${step.lastId}: the hops lost their order`, { where: 'pipeline.stage' });
    step.lastId = id;
    step.microBatches++;
    step.nllSum += result.nllSum;
    step.alignSum += result.align * kept.input.shape[0];
    for (const [name, g] of result.grads) {
      const prev = step.grads.get(name);
      if (!prev) step.grads.set(name, g);
      else {
        step.grads.set(name, tf.add(prev, g));
        tf.dispose([prev, g]);
      }
    }
    if (needInput) {
      const g = result.inputGrad!;
      const data = (await g.data()) as Float32Array;
      const shape = g.shape;
      g.dispose();
      await links.previous!.send({ header: { type: 'grad', runId: payload.runId, id, stats: [statsJson()], sentAt: wallMs() }, tensors: new TensorSet().add('grad', data, shape) });
    } else {
      await control.send({ header: { type: 'backward-done', runId: payload.runId, id, stats: [statsJson()] }, tensors: new TensorSet() });
    }
  };

  /** `collect`: the step's summed gradients to the coordinator; the next step starts from zero. */
  const collect = async (): Promise<void> => {
    const done = step;
    step = emptyStep();
    const tensors = new TensorSet();
    for (const [name, g] of done.grads) {
      tensors.add(name, (await g.data()) as Float32Array, g.shape);
      g.dispose();
    }
    await control.send({ header: { type: 'grads', runId: payload.runId, stage: index, microBatches: done.microBatches, nllSum: done.nllSum, alignSum: done.alignSum, stats: [statsJson()] }, tensors });
  };

  const handle = async (message: PipelineMessage & { bytes?: number }, waitingSince: number, receivedAt: number): Promise<'end' | void> => {
    const { header } = message;
    switch (header.type) {
      case 'route': {
        inbox.setReceiveTimeout(args.idleTimeoutMs);
        const addresses = header.addresses as string[];
        links.next = last ? control : PipelineOutbox.connect(addresses[index + 1]);
        if (index > 0) links.previous = PipelineOutbox.connect(addresses[index - 1]);
        if (!last) await links.next.send({ header, tensors: new TensorSet() });
        return;
      }
      case 'params': {
        const harmonizerWeights = new Map<string, { data: Float32Array; shape: readonly number[] }>();
        trained.clear();
        for (const [name, t] of message.tensors) {
          if (name.startsWith('harmonizers.')) {
            harmonizerWeights.set(name, { data: t.data as Float32Array, shape: t.shape });
            continue;
          }
          const v = weights.get(name);
          if (!v || v.size !== t.data.length) throw new ClusterError('PIPELINE_FAILED', v ? `"${name}" has ${t.data.length} values, stage ${index} holds [${v.shape}]` : `stage ${index} (blocks ${payload.fromBlock}-${payload.toBlock}) holds no weight "${name}"`, { where: 'pipeline.stage params' });
          tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, v.shape, 'float32')));
          trained.set(name, v);
        }
        syncHarmonizers(harmonizers, harmonizerWeights, stage.config.hiddenSize, stage.config.normEps);
        paramsVersion = header.version as number;
        // Batches of this version that overtook their parameters (they came another way) run now.
        for (const waiting of deferred.splice(0)) await handle(waiting, receivedAt, receivedAt);
        return;
      }
      case 'collect':
        await collect();
        return;
      case 'end':
        // The end marker collects every stage's final figures on its way to the coordinator.
        await links.next!.send({ header: { ...header, stats: [...((header.stats as JsonValue[]) ?? []), statsJson()] }, tensors: new TensorSet() });
        return 'end';
    }
    if (!links.next) throw new ClusterError('PIPELINE_FAILED', `stage ${index} got "${header.type}" before its route`, { where: 'pipeline.stage' });
    if (header.type === 'grad') {
      const g = message.tensors.require('grad');
      await backward(header.id as number, tf.tensor3d(g.data as Float32Array, g.shape as [number, number, number]));
      return;
    }
    if (header.type !== 'batch') throw new ClusterError('PIPELINE_FAILED', `stage ${index} cannot handle a "${header.type}" message`, { where: 'pipeline.stage' });
    if (typeof header.version === 'number' && header.version !== paramsVersion) {
      deferred.push(message);
      return;
    }
    if (!stage.first && typeof header.sentAt === 'number' && message.bytes !== undefined) {
      stats.hopBytes += message.bytes;
      stats.hopSeconds += Math.max(0, receivedAt - Math.max(header.sentAt, waitingSince)) / 1000;
    }
    await forward(message);
  };

  try {
    await control.send({ header: { type: 'ready', runId: payload.runId, stage: index, address: inbox.address, bytesRead, loadSeconds, peakRssBytes: peakRss() }, tensors: new TensorSet() });
    ctx.progress({ stage: index, phase: 'ready', address: inbox.address });
    log.info({ runId: payload.runId, stage: index, blocks: [payload.fromBlock, payload.toBlock], address: inbox.address, bytesRead, loadSeconds }, 'pipeline stage loaded');
    for (;;) {
      const waitingSince = wallMs();
      const message = await inbox.receive();
      const receivedAt = wallMs();
      if (message.header.runId !== payload.runId) continue;
      if (message.header.type === 'abort') {
        // The coordinator gave this run up (another stage died): free the worker for the next plan.
        log.warn({ runId: payload.runId, stage: index, reason: message.header.reason }, 'pipeline run aborted');
        break;
      }
      if ((await handle(message, waitingSince, receivedAt)) === 'end') break;
    }
    const final = { ...stats, bytesSent: bytesSent(), bytesReceived: inbox.bytesReceived, peakRssBytes: peakRss(), loadSeconds, bytesRead };
    log.info({ runId: payload.runId, ...final }, 'pipeline stage done');
    return final;
  } finally {
    if (links.next && links.next !== control) links.next.close();
    links.previous?.close();
    control.close();
    inbox.close();
    for (const kept of saved.values()) tf.dispose([kept.input, kept.targets, kept.lossMask].filter((t): t is tf.Tensor => t !== undefined));
    tf.dispose([...step.grads.values()]);
    for (const h of harmonizers.values()) h.dispose();
    stage.dispose();
  }
}
