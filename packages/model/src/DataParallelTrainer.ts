import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { threadEnv } from '@scaleot/core';
import type { AdamWState } from './AdamW.js';
import { ModelError } from './ModelError.js';
import { sliceBatch, targetTokens, validateBatch, type TokenBatch } from './TokenBatch.js';
import type { StepInfo, TrainerOptions } from './Trainer.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './trainerProtocol.js';
import type { CausalLM } from './types.js';
import type { BackendChoice } from './useBackend.js';

export interface DataParallelTrainerOptions extends Omit<TrainerOptions, 'variables'> {
  /** Worker threads, one model replica each (default 2: this machine's cores). */
  threads?: number;
  /** Names (as in model.namedWeights()) of the parameters to train (default: all). */
  trainable?: string[];
  /** Backend of the replicas (default: the calling thread's current backend). */
  backend?: BackendChoice;
  /**
   * For models whose block list is not what createModel(config, weights) builds (harmonizers, LoRA…):
   * a module (absolute path or file URL) exporting `buildReplica({config, weights, args})` → CausalLM.
   */
  replica?: {
    module: string | URL;
    exportName?: string;
    args?: unknown;
    /** An export `(model, args) → Map<name, Variable>` naming trained variables outside namedWeights() (LoRA factors). */
    variablesExport?: string;
    /** The replica builds its weights itself (from disk): only the trained ones are sent, by `loadTrainable`. Default false. */
    loadsWeights?: boolean;
  };
  /** The trained variables by name when they are not all in namedWeights() (e.g. LoRA factors). Default: `trainable` from namedWeights(). */
  variables?: Map<string, tf.Variable>;
}

/** Where one trained parameter lives in the flat gradient buffers. */
export interface TrainableSlot {
  name: string;
  offset: number;
  size: number;
  shape: number[];
}

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

/**
 * Data parallelism over worker threads (wasm runs one thread per isolate): every replica starts from the
 * same weights, computes the gradient of its rows of the global batch normalised by the global token
 * count, the main thread sums the shards through shared memory, and every replica applies the same
 * clip + AdamW to the same sum, so the replicas stay identical and equal the single-thread Trainer up to
 * float summation order.
 */
export class DataParallelTrainer {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private steps = 0;
  private failed?: Error;
  private closing = false;
  private readonly slots: Float32Array[];
  private readonly sum: Float32Array;

  private constructor(
    private readonly workers: Worker[],
    slotBuffers: SharedArrayBuffer[],
    sumBuffer: SharedArrayBuffer,
    readonly config: CausalLM['config'],
    private readonly opts: DataParallelTrainerOptions,
    /** The trained parameters' places in the flat buffers. */
    readonly layout: TrainableSlot[],
  ) {
    this.slots = slotBuffers.map((b) => new Float32Array(b));
    this.sum = new Float32Array(sumBuffer);
  }

  static async create(model: CausalLM, opts: DataParallelTrainerOptions = {}): Promise<DataParallelTrainer> {
    const threads = opts.threads ?? 2;
    if (!(threads >= 1 && Number.isInteger(threads))) throw new ModelError('BAD_ARGUMENT', `threads must be a positive integer, got ${threads}`, { where: 'DataParallelTrainer' });
    const named = opts.variables ? new Map([...model.namedWeights(), ...opts.variables]) : model.namedWeights();
    const trainable = opts.variables ? [...opts.variables.keys()] : (opts.trainable ?? [...named.keys()]);
    let total = 0;
    const layout: TrainableSlot[] = [];
    for (const name of trainable) {
      const v = named.get(name);
      if (!v) throw new ModelError('UNKNOWN_PARAMETER', `no parameter "${name}" in the model`, { where: 'trainable' });
      layout.push({ name, offset: total, size: v.size, shape: v.shape.slice() });
      total += v.size;
    }
    const sendWeights = !opts.replica?.loadsWeights;
    const names = sendWeights ? [...model.namedWeights().keys()] : [];
    const shapes = names.map((n) => named.get(n)!.shape.slice());
    const weights = names.map((n) => (named.get(n)!.dataSync() as Float32Array).slice());
    const backend = opts.backend ?? (tf.getBackend() as BackendChoice);
    const sumBuffer = new SharedArrayBuffer(total * 4);
    const slotBuffers: SharedArrayBuffer[] = [];
    const workers: Worker[] = [];
    const url = new URL('./trainerWorker.js', import.meta.url);
    for (let w = 0; w < threads; w++) {
      const slot = new SharedArrayBuffer(total * 4);
      slotBuffers.push(slot);
      const data: WorkerInit = {
        backend,
        rawConfig: model.config.raw,
        config: model.config,
        names,
        shapes,
        weights,
        trainable,
        gradSlot: slot,
        gradSum: sumBuffer,
        adamW: opts.adamW ?? {},
        gradClip: opts.gradClip ?? 1.0,
        microBatchSize: opts.microBatchSize,
        seed: 0,
        replicaModule: opts.replica ? (opts.replica.module instanceof URL ? opts.replica.module.href : opts.replica.module) : undefined,
        replicaExport: opts.replica?.exportName,
        replicaArgs: opts.replica?.args,
        replicaVariables: opts.replica?.variablesExport,
      };
      workers.push(new Worker(url, { workerData: data, env: threadEnv() }));
    }
    const trainer = new DataParallelTrainer(workers, slotBuffers, sumBuffer, model.config, opts, layout);
    try {
      await trainer.attach();
    } catch (err) {
      await trainer.close();
      throw err;
    }
    return trainer;
  }

  private attach(): Promise<void> {
    const ready = this.workers.map(
      (worker, w) =>
        new Promise<void>((resolve, reject) => {
          worker.on('message', (msg: WorkerReply) => {
            if (msg.type === 'ready') return resolve();
            if (msg.type === 'error' && msg.id === undefined) {
              const err = new ModelError('WORKER_FAILED', `replica ${w} failed to start${msg.code ? ` (${msg.code})` : ''}: ${msg.message}`, { where: `worker ${w}` });
              this.fail(err);
              return reject(err);
            }
            const id = (msg as { id?: number }).id;
            const p = id === undefined ? undefined : this.pending.get(id);
            if (!p) return;
            this.pending.delete(id!);
            if (msg.type === 'error') p.reject(new ModelError(msg.code ?? 'WORKER_FAILED', `replica ${w}: ${msg.message}`, { where: `worker ${w}` }));
            else p.resolve(msg);
          });
          const onDeath = (e: Error) => {
            const err = new ModelError('WORKER_FAILED', `replica ${w} died: ${e.message}`, { where: `worker ${w}`, cause: e });
            this.fail(err);
            reject(err);
          };
          worker.on('error', onDeath);
          worker.on('exit', (code) => {
            if (!this.closing) onDeath(new Error(`exited with code ${code}`));
          });
        }),
    );
    return Promise.all(ready).then(() => undefined);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<R extends WorkerReply['type']>(w: number, req: RequestBody, expect: R, transfer: ArrayBuffer[] = []): Promise<Extract<WorkerReply, { type: R }>> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[w].postMessage({ ...req, id }, transfer);
    }).then((r) => {
      if (r.type !== expect) throw new ModelError('WORKER_PROTOCOL', `replica ${w} answered ${r.type}, expected ${expect}`, { where: `worker ${w}` });
      return r as Extract<WorkerReply, { type: R }>;
    });
  }

  get threads(): number {
    return this.workers.length;
  }

  get stepCount(): number {
    return this.steps;
  }

  async step(batch: TokenBatch): Promise<StepInfo> {
    const started = performance.now();
    validateBatch(batch, this.config.vocabSize, this.config.maxPositions);
    const tokens = targetTokens(batch);
    if (tokens <= 0) throw new ModelError('BAD_BATCH', 'the loss mask selects no target token', { where: 'batch' });
    const n = this.workers.length;
    const shards = this.workers.map((_, w) => {
      const part = sliceBatch(batch, Math.floor((w * batch.rows) / n), Math.floor(((w + 1) * batch.rows) / n));
      const ids = part.ids.slice();
      const lossMask = part.lossMask?.slice();
      const transfer = [ids.buffer as ArrayBuffer, ...(lossMask ? [lossMask.buffer as ArrayBuffer] : [])];
      return this.call(w, { type: 'grads', ids, rows: part.rows, seqLen: part.seqLen, lossMask, normalizer: tokens }, 'grads', transfer);
    });
    const replies = await Promise.all(shards);
    const lossSum = replies.reduce((a, r) => a + r.lossSum, 0);
    // Σ of shard gradients, in float32 (what the single-thread accumulation does too).
    this.sum.set(this.slots[0]);
    for (let w = 1; w < n; w++) {
      const s = this.slots[w];
      const out = this.sum;
      for (let i = 0; i < out.length; i++) out[i] += s[i];
    }
    const lr = (this.opts.schedule ?? (() => this.opts.adamW?.lr ?? 1e-3))(this.steps);
    const applied = await Promise.all(this.workers.map((_, w) => this.call(w, { type: 'apply', lr }, 'applied')));
    this.steps += 1;
    const seconds = (performance.now() - started) / 1000;
    const info: StepInfo = { step: this.steps, loss: lossSum / tokens, lr, gradNorm: applied[0].gradNorm, tokens, tokensPerSecond: (batch.rows * batch.seqLen) / seconds, seconds };
    this.opts.onStep?.(info);
    return info;
  }

  /**
   * Gradient-only data parallelism for a loop that applies its own update: replica `w` computes the
   * gradients of `parts[w]` (micro-batches of any length), normalised by `normalizer`; returns the Σ over
   * replicas as tensors (caller disposes) and the Σ of their loss sums. Follow with `loadTrainable`.
   */
  async gradients(parts: TokenBatch[][], normalizer: number): Promise<{ grads: Map<string, tf.Tensor>; lossSum: number }> {
    const n = this.workers.length;
    if (parts.length !== n) throw new ModelError('BAD_ARGUMENT', `expected micro-batches for ${n} replicas, got ${parts.length}`, { where: 'gradients' });
    const replies = await Promise.all(
      parts.map((list, w) => {
        const copies = list.map((p) => ({ ids: p.ids.slice(), rows: p.rows, seqLen: p.seqLen, lossMask: p.lossMask?.slice() }));
        const transfer = copies.flatMap((p) => [p.ids.buffer as ArrayBuffer, ...(p.lossMask ? [p.lossMask.buffer as ArrayBuffer] : [])]);
        return this.call(w, { type: 'gradParts', parts: copies, normalizer }, 'grads', transfer);
      }),
    );
    this.sum.set(this.slots[0]);
    for (let w = 1; w < n; w++) {
      const s = this.slots[w];
      const out = this.sum;
      for (let i = 0; i < out.length; i++) out[i] += s[i];
    }
    const grads = new Map<string, tf.Tensor>();
    for (const p of this.layout) grads.set(p.name, tf.tensor(this.sum.slice(p.offset, p.offset + p.size), p.shape, 'float32'));
    return { grads, lossSum: replies.reduce((a, r) => a + r.lossSum, 0) };
  }

  /** Sets every replica's trained parameters to `values` (by name; all of them). */
  async loadTrainable(values: ReadonlyMap<string, Float32Array>): Promise<void> {
    for (const p of this.layout) {
      const v = values.get(p.name);
      if (!v || v.length !== p.size) throw new ModelError('UNKNOWN_PARAMETER', `loadTrainable needs "${p.name}" with ${p.size} values`, { where: 'loadTrainable' });
      this.sum.set(v, p.offset);
    }
    await Promise.all(this.workers.map((_, w) => this.call(w, { type: 'loadTrainable' }, 'done')));
  }

  /** Current weights of replica `w` (default 0) under canonical names. */
  async getWeights(w = 0): Promise<Map<string, Float32Array>> {
    const r = await this.call(w, { type: 'getWeights' }, 'weights');
    return new Map(r.names.map((n, i) => [n, r.weights[i]]));
  }

  /** Copies replica 0's weights into `model`'s variables (same names). */
  async syncTo(model: CausalLM): Promise<void> {
    const weights = await this.getWeights(0);
    const named = model.namedWeights();
    tf.tidy(() => {
      for (const [name, data] of weights) {
        const v = named.get(name);
        if (!v) throw new ModelError('UNKNOWN_PARAMETER', `model has no parameter "${name}"`, { where: 'syncTo' });
        v.assign(tf.tensor(data, v.shape, 'float32'));
      }
    });
  }

  async getOptimizerState(): Promise<AdamWState> {
    return (await this.call(0, { type: 'getState' }, 'state')).state;
  }

  async setOptimizerState(state: AdamWState): Promise<void> {
    await Promise.all(this.workers.map((_, w) => this.call(w, { type: 'setState', state }, 'done')));
    this.steps = state.step;
  }

  /** Terminates the replicas; later calls reject with CLOSED. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.fail(new ModelError('CLOSED', 'the trainer was closed', { where: 'DataParallelTrainer' }));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
