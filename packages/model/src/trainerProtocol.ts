import type { AdamWOptions, AdamWState } from './AdamW.js';
import type { BackendChoice } from './useBackend.js';

/** workerData of a data-parallel replica. */
export interface WorkerInit {
  backend: BackendChoice;
  rawConfig: Record<string, unknown>;
  config: unknown;
  names: string[];
  weights: Float32Array[];
  shapes: number[][];
  /** Names of the trained parameters, in flat-buffer order. */
  trainable: string[];
  /** Where this replica writes its gradient contribution (float32, Σ sizes of `trainable`). */
  gradSlot: SharedArrayBuffer;
  /** The summed gradient every replica applies. */
  gradSum: SharedArrayBuffer;
  adamW: AdamWOptions;
  gradClip: number;
  microBatchSize?: number;
  seed: number;
  /** Optional module exporting `buildReplica({config, weights, args})` → CausalLM, for custom block lists. */
  replicaModule?: string;
  replicaExport?: string;
  replicaArgs?: unknown;
  /** Export of `replicaModule` mapping (model, args) to the trained variables by name, for variables outside namedWeights() (LoRA factors). */
  replicaVariables?: string;
}

/** One micro-batch of a data-parallel gradient request. */
export interface BatchPart {
  ids: Int32Array;
  rows: number;
  seqLen: number;
  lossMask?: Float32Array;
}

export type WorkerRequest =
  | { type: 'grads'; id: number; ids: Int32Array; rows: number; seqLen: number; lossMask?: Float32Array; normalizer: number }
  | { type: 'apply'; id: number; lr: number }
  | { type: 'gradParts'; id: number; parts: BatchPart[]; normalizer: number }
  | { type: 'loadTrainable'; id: number }
  | { type: 'getWeights'; id: number }
  | { type: 'getState'; id: number }
  | { type: 'setState'; id: number; state: AdamWState }
  | { type: 'setWeights'; id: number; names: string[]; weights: Float32Array[] };

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'error'; id?: number; message: string; /** Set when the error was a ScaleotError (a stable project code). */ code?: string; stack?: string }
  | { type: 'grads'; id: number; lossSum: number }
  | { type: 'applied'; id: number; gradNorm: number }
  | { type: 'weights'; id: number; names: string[]; weights: Float32Array[] }
  | { type: 'state'; id: number; state: AdamWState }
  | { type: 'done'; id: number };
