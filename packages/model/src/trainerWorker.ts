// A data-parallel replica (worker_threads entry point, loaded from dist by DataParallelTrainer).
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { ScaleotError } from '@scaleot/core';
import { createModel } from './createModel.js';
import { crossEntropyPerToken } from '@scaleot/backend';
import { computeGradients } from './gradients.js';
import type { ModelConfig } from './families/types.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './trainerProtocol.js';
import type { CausalLM } from './types.js';
import { UpdateRule } from './UpdateRule.js';
import { useBackend } from './useBackend.js';

const port = parentPort!;
const init = workerData as WorkerInit;

function post(reply: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(reply, transfer);
}

async function buildReplica(): Promise<CausalLM> {
  const weights = new Map(init.names.map((n, i) => [n, init.weights[i]]));
  if (init.replicaModule) {
    const mod = (await import(init.replicaModule)) as Record<string, unknown>;
    const build = mod[init.replicaExport ?? 'buildReplica'] as (a: { config: ModelConfig; weights: Map<string, Float32Array>; args: unknown }) => CausalLM | Promise<CausalLM>;
    return build({ config: init.config as ModelConfig, weights, args: init.replicaArgs });
  }
  return createModel(init.config as ModelConfig, weights, { seed: init.seed, consumeWeights: true });
}

async function main(): Promise<void> {
  await useBackend(init.backend);
  const model = await buildReplica();
  init.weights = [];
  let all = model.namedWeights();
  if (init.replicaModule && init.replicaVariables) {
    const mod = (await import(init.replicaModule)) as Record<string, unknown>;
    const variablesOf = mod[init.replicaVariables] as (model: CausalLM, args: unknown) => Map<string, tf.Variable>;
    all = new Map([...all, ...variablesOf(model, init.replicaArgs)]);
  }
  const vars = new Map<string, tf.Variable>();
  const offsets: number[] = [];
  let total = 0;
  for (const name of init.trainable) {
    const v = all.get(name);
    if (!v) throw new Error(`replica has no parameter "${name}"`);
    vars.set(name, v);
    offsets.push(total);
    total += v.size;
  }
  const slot = new Float32Array(init.gradSlot);
  const sum = new Float32Array(init.gradSum);
  if (slot.length !== total || sum.length !== total) throw new Error(`gradient buffers hold ${slot.length} floats, the trained parameters ${total}`);
  const rule = new UpdateRule(vars, init.adamW, init.gradClip);

  const handle = (req: WorkerRequest): void => {
    switch (req.type) {
      case 'grads': {
        const batch = { ids: req.ids, rows: req.rows, seqLen: req.seqLen, lossMask: req.lossMask };
        const { grads, lossSum } = computeGradients(model, vars, batch, req.normalizer, init.microBatchSize ?? req.rows);
        let i = 0;
        for (const g of grads.values()) {
          slot.set(g.dataSync() as Float32Array, offsets[i++]);
          g.dispose();
        }
        post({ type: 'grads', id: req.id, lossSum });
        return;
      }
      case 'gradParts': {
        // Several micro-batches (of different lengths): Σ of their gradients, normalised by the global
        // target count. Rows hold T + 1 tokens (inputs, then the last target), as the tuning loop's
        // windows do: the model reads the first T, exactly like offsite's shiftedLossSum.
        slot.fill(0);
        let lossSum = 0;
        const varList = [...vars.values()];
        for (const part of req.parts) {
          const { value, grads } = tf.tidy(() =>
            tf.variableGrads(() => {
              const ids = tf.tensor2d(part.ids, [part.rows, part.seqLen], 'int32');
              const inputs = tf.slice(ids, [0, 0], [part.rows, part.seqLen - 1]) as tf.Tensor2D;
              const targets = tf.slice(ids, [0, 1], [part.rows, part.seqLen - 1]);
              const nll = crossEntropyPerToken(model.head(model.runBlocks(model.embed(inputs))), targets);
              const masked = part.lossMask ? tf.mul(nll, tf.tensor2d(part.lossMask, [part.rows, part.seqLen - 1], 'float32')) : nll;
              return tf.div(tf.sum(masked), req.normalizer) as tf.Scalar;
            }, varList),
          );
          lossSum += value.dataSync()[0] * req.normalizer;
          value.dispose();
          varList.forEach((v, i) => {
            const g = grads[v.name];
            if (!g) return; // not on the loss path: its gradient is 0
            const data = g.dataSync() as Float32Array;
            const off = offsets[i];
            for (let k = 0; k < data.length; k++) slot[off + k] += data[k];
            g.dispose();
          });
        }
        post({ type: 'grads', id: req.id, lossSum });
        return;
      }
      case 'loadTrainable': {
        // The caller applied the update and wrote the trained values into the shared buffer.
        tf.tidy(() => {
          let i = 0;
          for (const v of vars.values()) {
            const off = offsets[i++];
            v.assign(tf.tensor(sum.slice(off, off + v.size), v.shape, 'float32'));
          }
        });
        post({ type: 'done', id: req.id });
        return;
      }
      case 'apply': {
        const grads = new Map<string, tf.Tensor>();
        let i = 0;
        for (const [name, v] of vars) {
          const off = offsets[i++];
          // Copy out of shared memory: the cpu backend would otherwise alias the buffer.
          grads.set(name, tf.tensor(sum.slice(off, off + v.size), v.shape, 'float32'));
        }
        const gradNorm = rule.apply(grads, req.lr);
        post({ type: 'applied', id: req.id, gradNorm });
        return;
      }
      case 'getWeights': {
        const names: string[] = [];
        const weights: Float32Array[] = [];
        for (const [name, v] of model.namedWeights()) {
          names.push(name);
          weights.push((v.dataSync() as Float32Array).slice());
        }
        post({ type: 'weights', id: req.id, names, weights }, weights.map((w) => w.buffer as ArrayBuffer));
        return;
      }
      case 'setWeights': {
        const named = model.namedWeights();
        tf.tidy(() => {
          req.names.forEach((name, i) => {
            const v = named.get(name);
            if (!v) throw new Error(`replica has no parameter "${name}"`);
            v.assign(tf.tensor(req.weights[i], v.shape, 'float32'));
          });
        });
        post({ type: 'done', id: req.id });
        return;
      }
      case 'getState': {
        const state = rule.optimizer.getState();
        post({ type: 'state', id: req.id, state });
        return;
      }
      case 'setState': {
        rule.optimizer.setState(req.state);
        post({ type: 'done', id: req.id });
        return;
      }
    }
  };

  port.on('message', (req: WorkerRequest) => {
    try {
      handle(req);
    } catch (err) {
      const e = err as Error;
      post({ type: 'error', id: req.id, message: e.message, code: e instanceof ScaleotError ? e.code : undefined, stack: e.stack });
    }
  });
  post({ type: 'ready' });
}

main().catch((err: Error) => post({ type: 'error', message: err.message, code: err instanceof ScaleotError ? err.code : undefined, stack: err.stack }));
