import type { Task, TokenEncoder } from '@scaleot/data';
import { Tokenizer } from '@scaleot/tokenizer';
import { trainingThreads, type CausalLM } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { saveAdapter } from './adapterArtifact.js';
import { loadEmulator, type LoadedEmulator } from './emulator.js';
import { isLoraHost, LoraBlock } from './LoraBlock.js';
import type { AdapterManifest, LoraSpec } from './manifest.js';
import { OffsiteError } from './OffsiteError.js';
import { blockKindModules } from './blockKinds.js';
import { TaskBatcher } from './TaskBatcher.js';
import type { EmulatorReplicaArgs } from './tuneReplica.js';
import { resolveTask, type TaskInput } from './taskInput.js';
import { DEFAULT_TRAIN, trainLoop, type TrainHyperParameters, type TrainLoopOptions, type TrainResult } from './trainLoop.js';

/** Checkpointing and reporting settings of a training run. */
export type RunControl = Pick<TrainLoopOptions, 'checkpointDir' | 'checkpointEvery' | 'resume' | 'stopAfterStep' | 'onStep' | 'logger' | 'threads'>;

export interface TuneAdapterOptions extends RunControl {
  /** Emulator artifact to tune against. */
  emulatorDir: string;
  /** Built-in task name, task spec path, or a loaded Task. */
  task: TaskInput;
  /** Data root for built-in task names. Default ./data. */
  dataRoot?: string;
  /** Where the adapter artifact goes (written when the run completes). */
  outDir: string;
  /** Defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
  /** LoRA inside the adapter blocks instead of tuning them whole. Default: none. */
  lora?: LoraSpec | null;
  overwrite?: boolean;
}

export interface TuneAdapterResult {
  /** False when `stopAfterStep` ended the run early (state is in checkpointDir; nothing written to outDir). */
  completed: boolean;
  manifest?: AdapterManifest;
  outDir: string;
  train: TrainResult;
  hyper: TrainHyperParameters;
  /** Threads that computed gradients. */
  threads: number;
}

/** The data owner's side: tune the adapter blocks of an emulator on a task and write the adapter artifact. */
export async function tuneAdapter(opts: TuneAdapterOptions): Promise<TuneAdapterResult> {
  const task = await resolveTask(opts.task, opts.dataRoot);
  const tokenizer = await Tokenizer.fromDir(opts.emulatorDir);
  const emu = await loadEmulator(opts.emulatorDir);
  try {
    const hyper = { ...DEFAULT_TRAIN, ...opts.hyper };
    // Every core this job is given on a CPU backend (available parallelism, capped by the cgroup limit and SCALEOT_THREADS); one loop on a GPU.
    const threads = opts.threads ?? trainingThreads();
    const tuned = await tuneAdapterInMemory(emu, task, tokenizer, hyper, opts.lora ?? null, { ...opts, threads });
    const completed = tuned.train.steps >= hyper.steps;
    let manifest: AdapterManifest | undefined;
    if (completed) {
      const weights = adapterWeights(emu);
      try {
        manifest = await saveAdapter(opts.outDir, emu.manifest, weights, { lora: opts.lora ?? null, parameters: { task: task.spec.name, taskType: task.spec.type, hyper, train: { steps: tuned.train.steps, finalLoss: tuned.train.losses.at(-1) ?? null } } }, { overwrite: opts.overwrite });
      } finally {
        tf.dispose([...weights.values()]);
      }
    }
    return { completed, manifest, outDir: opts.outDir, train: tuned.train, hyper, threads };
  } finally {
    emu.model.dispose();
  }
}

/**
 * Tunes the adapter blocks of a loaded emulator in place (with LoRA: wraps them in LoraBlocks first and
 * trains only the LoRA factors). Returns the training result; `adapterWeights(emu)` gives the tensors to export.
 */
export async function tuneAdapterInMemory(
  emu: LoadedEmulator,
  task: Task,
  tokenizer: TokenEncoder,
  hyper: TrainHyperParameters,
  lora: LoraSpec | null,
  control: RunControl = {},
): Promise<{ train: TrainResult }> {
  const idx = [...emu.manifest.adapter.bottom, ...emu.manifest.adapter.top];
  if (lora) wrapWithLora(emu.model, idx, lora, hyper.seed);
  const variables = trainableAdapterVariables(emu.model, idx);
  const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen ?? emu.config.maxPositions, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
  const replica = emulatorReplica(emu, { indices: idx, lora, seed: hyper.seed });
  const train = await trainLoop(emu.model, variables, batcher, hyper, { ...control, replica, label: 'tune' });
  return { train };
}

/**
 * How a data-parallel replica of a loaded emulator is built (its thread loads the same artifact and
 * gets the trained weights by `loadTrainable`): the adapter blocks (or their LoRA factors) train, or,
 * with `allWeights`, every weight of the emulator (the privacy audit's attackers).
 */
export function emulatorReplica(emu: LoadedEmulator, what: Omit<EmulatorReplicaArgs, 'emulatorDir' | 'kindModules'>): NonNullable<TrainLoopOptions['replica']> {
  const args: EmulatorReplicaArgs = { ...what, emulatorDir: emu.dir, kindModules: blockKindModules() };
  return { module: new URL('./tuneReplica.js', import.meta.url), exportName: 'buildEmulatorReplica', variablesExport: 'emulatorReplicaVariables', loadsWeights: true, args };
}

/** Replaces the given blocks of a model by LoRA-wrapped versions (idempotent for blocks already wrapped). */
export function wrapWithLora(model: CausalLM, indices: readonly number[], lora: LoraSpec, seed = 0): void {
  if (!Number.isInteger(lora.rank) || lora.rank < 1 || !(lora.alpha > 0)) {
    throw new OffsiteError('BAD_LORA', `LoRA needs an integer rank ≥ 1 and alpha > 0, got rank ${lora.rank}, alpha ${lora.alpha}`, { where: 'lora' });
  }
  model.blocks = model.blocks.map((b) => {
    if (!indices.includes(b.sourceIndex) || b instanceof LoraBlock) return b;
    if (!isLoraHost(b)) throw new OffsiteError('BAD_LORA', `block ${b.sourceIndex} is a "${b.kind}", LoRA wraps original transformer blocks only`, { where: 'lora' });
    return new LoraBlock(b, lora, seed);
  });
}

/** What trains on the data owner's side: the adapter blocks' weights, or their LoRA factors when wrapped. */
export function trainableAdapterVariables(model: CausalLM, indices: readonly number[]): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  const present = new Set<number>();
  for (const b of model.blocks) {
    if (!indices.includes(b.sourceIndex)) continue;
    present.add(b.sourceIndex);
    const vars = b instanceof LoraBlock ? b.loraVariables() : b.namedVariables();
    for (const [n, v] of vars) out.set(n, v);
  }
  const absent = indices.filter((i) => !present.has(i));
  if (absent.length > 0) throw new OffsiteError('ADAPTER_BLOCK_MISSING', `the model has no block for adapter index ${absent.join(',')}`, { where: 'adapter' });
  return out;
}

/** The adapter blocks' weights under HF names (LoRA merged), as new tensors the caller disposes. */
export function adapterWeights(emu: { model: CausalLM; manifest: { adapter: { bottom: number[]; top: number[] } } }): Map<string, tf.Tensor> {
  const idx = [...emu.manifest.adapter.bottom, ...emu.manifest.adapter.top];
  const out = new Map<string, tf.Tensor>();
  for (const b of emu.model.blocks) {
    if (!idx.includes(b.sourceIndex)) continue;
    const weights = b instanceof LoraBlock ? b.mergedWeights() : new Map([...b.namedVariables()].map(([n, v]) => [n, tf.clone(v)]));
    for (const [n, t] of weights) out.set(n, t);
  }
  return out;
}
