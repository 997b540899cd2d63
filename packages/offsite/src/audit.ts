import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PROTOCOL_VERSION, type Task, type TokenEncoder } from '@scaleot/data';
import { readModelConfig, trainingThreads, type CausalLM } from '@scaleot/model';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { applyAdapter, readAdapter, type LoadedAdapter } from './adapterArtifact.js';
import { loadEmulator, type LoadedEmulator } from './emulator.js';
import { emulatorFingerprint } from './emulatorFingerprint.js';
import { evaluateModel, taskMetric, type EvalOptions, type Metric } from './evaluate.js';
import { readManifest, type EmulatorManifest } from './manifest.js';
import { AdapterMismatchError, OffsiteError } from './OffsiteError.js';
import { plugInModel } from './plugIn.js';
import { sourceModelInfo } from './sourceModel.js';
import { TaskBatcher } from './TaskBatcher.js';
import { resolveTask, type TaskInput } from './taskInput.js';
import { DEFAULT_TRAIN, trainLoop, type TrainHyperParameters, type TrainResult, type TrainStepInfo } from './trainLoop.js';
import { emulatorReplica, type RunControl } from './tuneAdapter.js';

/**
 * The audit's attackers, each a data owner who wants the model itself rather than a tuned adapter:
 * - `finetune`: every emulator weight (embeddings, adapter blocks, kept middle blocks, harmonizers, SRC'd
 *   matrices) tuned on the task's train split with the LM loss;
 * - `distill`: every emulator weight tuned to match the plug-in's next-token distributions (KL to the
 *   plug-in's logits) on the same training text: the plug-in behaviour the data owner can observe.
 */
export type AttackerName = 'finetune' | 'distill';
export const ATTACKERS: readonly AttackerName[] = ['finetune', 'distill'];

export interface AttackerResult {
  name: AttackerName;
  /** The attacked emulator's value under the task's evaluation protocol (perplexity or accuracy). */
  value: number;
  /** What the attacker started from: the emulator as shipped, or with the data owner's tuned adapter in it. */
  start: 'emulator' | 'emulator+adapter';
  /** Training objective: next-token NLL on the train split, or KL(plug-in ‖ emulator) on it. */
  objective: 'lm' | 'kl-to-plug-in';
  /** Tensors and scalars trained (every weight of the emulator). */
  trainedTensors: number;
  trainedParameters: number;
  /** Of which outside the adapter blocks (kept middle, harmonizers, SRC'd matrices, embeddings, final norm). */
  nonAdapterParameters: number;
  steps: number;
  firstLoss: number | null;
  finalLoss: number | null;
  /** Threads that computed gradients (the KL objective runs on one). */
  threads: number;
  trainSeconds: number;
  evalSeconds: number;
}

export interface EmulatorAuditOptions extends Pick<RunControl, 'logger' | 'threads'> {
  /** The emulator artifact under audit. */
  emulatorDir: string;
  task: TaskInput;
  /** Data root for built-in task names. Default ./data. */
  dataRoot?: string;
  /**
   * The data owner's tuned adapter for this emulator (what they legitimately hold). The attackers start
   * from the emulator with it plugged in; `distill` needs it (the plug-in's behaviour depends on it).
   */
  adapterDir?: string;
  /**
   * The full model the emulator was cut from. Only used to serve the plug-in's logits for `distill`
   * (the data owner sees the plug-in's outputs as a service, never its weights); nothing of it reaches
   * the attacked emulator but those logits.
   */
  modelDir?: string;
  /** Default: both when modelDir and adapterDir are given, else `finetune`. */
  attackers?: AttackerName[];
  /** The tuning budget (the same steps × batch × seq-len as the adapter tuning). Defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
  /** Default: the task's full protocol. */
  eval?: Pick<EvalOptions, 'batchSize' | 'maxBlocks' | 'maxExamples'>;
  onAttacker?: (result: AttackerResult) => void;
  onStep?: (attacker: AttackerName, info: TrainStepInfo) => void;
}

export interface EmulatorAuditResult {
  task: string;
  taskType: 'lm' | 'classification';
  metric: Metric;
  higherIsBetter: boolean;
  /** The best attacker's value (lowest perplexity, highest accuracy): the honest privacy number. */
  attacker: number;
  best: AttackerName;
  /** Value per attacker run. */
  attackers: Partial<Record<AttackerName, number>>;
  details: AttackerResult[];
  /** The equal compute budget every attacker got: the adapter tuning's steps × batch × seq-len. */
  budget: { steps: number; batchSize: number; seqLen: number; tokens: number };
  hyper: TrainHyperParameters;
  eval: { batchSize: number; maxBlocks: number | null; maxExamples: number | null };
  emulator: { dir: string; method: string; parameters: Record<string, unknown>; sha256: string };
  adapterDir: string | null;
  modelDir: string | null;
  protocolVersion: number;
  seconds: number;
  createdAt: string;
}

/** The inputs of an audit, checked: everything that can be wrong is found before any training. */
interface AuditInputs {
  task: Task;
  manifest: EmulatorManifest;
  adapter?: LoadedAdapter;
  attackers: AttackerName[];
}

async function checkAuditInputs(opts: EmulatorAuditOptions): Promise<AuditInputs> {
  const emulatorDir = resolve(opts.emulatorDir);
  if (!existsSync(emulatorDir) || !statSync(emulatorDir).isDirectory()) {
    throw new OffsiteError('EMULATOR_NOT_FOUND', `no emulator directory at ${emulatorDir}; pass the directory \`scaleot emulate\` wrote`, { where: emulatorDir });
  }
  const manifest = await readManifest(emulatorDir, 'scaleot.emulator');
  const task = await resolveTask(opts.task, opts.dataRoot);
  const attackers = opts.attackers ?? (opts.modelDir && opts.adapterDir ? [...ATTACKERS] : ['finetune']);
  if (attackers.length === 0) throw new OffsiteError('BAD_ARGUMENT', 'name at least one attacker (finetune, distill)', { where: 'attackers' });
  for (const a of attackers) if (!ATTACKERS.includes(a)) throw new OffsiteError('BAD_ARGUMENT', `unknown attacker "${a}"; known: ${ATTACKERS.join(', ')}`, { where: 'attackers' });
  if (attackers.includes('distill') && !(opts.modelDir && opts.adapterDir)) {
    throw new OffsiteError('AUDIT_NEEDS_PLUG_IN', 'the distill attacker learns from the plug-in\'s logits: give the full model (modelDir) and the data owner\'s tuned adapter (adapterDir)', { where: 'attackers' });
  }
  let adapter: LoadedAdapter | undefined;
  if (opts.adapterDir) {
    adapter = await readAdapter(opts.adapterDir);
    const tunedOn = (adapter.manifest.parameters.emulator as { sha256?: unknown } | undefined)?.sha256;
    if (tunedOn !== emulatorFingerprint(manifest)) {
      throw new AdapterMismatchError('ADAPTER_EMULATOR_MISMATCH', 'the adapter was not tuned on this emulator; audit the emulator the adapter came from', { where: adapter.dir });
    }
  }
  if (opts.modelDir) {
    const source = await sourceModelInfo(opts.modelDir);
    if (source.sha256 !== manifest.sourceModel.sha256) {
      throw new AdapterMismatchError('EMULATOR_SOURCE_MISMATCH', `the emulator was cut from model ${manifest.sourceModel.sha256.slice(0, 12)}…, this model is ${source.sha256.slice(0, 12)}…; give the full model the emulator came from`, { where: resolve(opts.modelDir) });
    }
  }
  return { task, manifest, adapter, attackers };
}

/**
 * The emulator privacy audit: what a data owner who wants the model itself can get from the emulator
 * with their own data and the compute budget of the adapter tuning. Each attacker trains every weight
 * of a fresh copy of the emulator through the project's training loop (`trainLoop`; data-parallel for
 * the LM objective) and is evaluated with the task's protocol (`evaluateModel`, as `eval` and `report`).
 * Every input is checked before any training; nothing is written (the caller writes the result).
 */
export async function auditEmulator(opts: EmulatorAuditOptions): Promise<EmulatorAuditResult> {
  const started = performance.now();
  const { task, manifest, adapter, attackers } = await checkAuditInputs(opts);
  const emulatorDir = resolve(opts.emulatorDir);
  const tokenizer = await Tokenizer.fromDir(emulatorDir);
  const hyper = { ...DEFAULT_TRAIN, ...opts.hyper };
  const evalOpts: EvalOptions = { ...opts.eval, logger: opts.logger };
  const details: AttackerResult[] = [];
  // Loaded before any training: a plug-in that cannot be built fails the audit before work starts.
  const plugIn: CausalLM | undefined = attackers.includes('distill') ? await plugInModel(opts.modelDir!, opts.adapterDir!) : undefined;
  try {
    for (const name of attackers) {
      opts.logger?.info({ attacker: name }, `audit: attacker ${name}`);
      const emu = await loadEmulator(emulatorDir);
      try {
        if (adapter) applyAdapter(emu.model, adapter);
        let train: TrainResult;
        let threads: number;
        if (name === 'finetune') {
          threads = opts.threads ?? trainingThreads();
          train = await fineTuneAttack(emu, task, tokenizer, hyper, { logger: opts.logger, threads, onStep: (i) => opts.onStep?.(name, i) });
        } else {
          threads = 1;
          train = await distillAttack(emu, plugIn!, task, tokenizer, hyper, { logger: opts.logger, onStep: (i) => opts.onStep?.(name, i) });
        }
        const t0 = performance.now();
        const value = (await evaluateModel(emu.model, task, tokenizer, { ...evalOpts, label: `attacker ${name}` })).value;
        const counts = parameterCounts(emu);
        const result: AttackerResult = {
          name,
          value,
          start: adapter ? 'emulator+adapter' : 'emulator',
          objective: name === 'finetune' ? 'lm' : 'kl-to-plug-in',
          ...counts,
          steps: train.steps,
          firstLoss: train.losses[0] ?? null,
          finalLoss: train.losses.at(-1) ?? null,
          threads,
          trainSeconds: train.seconds,
          evalSeconds: (performance.now() - t0) / 1000,
        };
        opts.logger?.info({ attacker: name, value }, `audit: attacker ${name} = ${value}`);
        details.push(result);
        opts.onAttacker?.(result);
      } finally {
        emu.model.dispose();
      }
    }
  } finally {
    plugIn?.dispose();
  }
  const metric = taskMetric(task);
  const higherIsBetter = metric === 'accuracy';
  const best = details.reduce((a, b) => ((higherIsBetter ? b.value > a.value : b.value < a.value) ? b : a));
  const seqLen = hyper.seqLen ?? (await readModelConfig(emulatorDir)).maxPositions;
  return {
    task: task.spec.name,
    taskType: task.spec.type,
    metric,
    higherIsBetter,
    attacker: best.value,
    best: best.name,
    attackers: Object.fromEntries(details.map((d) => [d.name, d.value])),
    details,
    budget: { steps: hyper.steps, batchSize: hyper.batchSize, seqLen, tokens: hyper.steps * hyper.batchSize * seqLen },
    hyper,
    eval: { batchSize: opts.eval?.batchSize ?? 8, maxBlocks: opts.eval?.maxBlocks ?? null, maxExamples: opts.eval?.maxExamples ?? null },
    emulator: { dir: emulatorDir, method: manifest.method, parameters: manifest.parameters, sha256: emulatorFingerprint(manifest) },
    adapterDir: adapter?.dir ?? null,
    modelDir: opts.modelDir ? resolve(opts.modelDir) : null,
    protocolVersion: PROTOCOL_VERSION,
    seconds: (performance.now() - started) / 1000,
    createdAt: new Date().toISOString(),
  };
}

function parameterCounts(emu: LoadedEmulator): Pick<AttackerResult, 'trainedTensors' | 'trainedParameters' | 'nonAdapterParameters'> {
  const all = allEmulatorVariables(emu.model);
  const adapterIdx = new Set([...emu.manifest.adapter.bottom, ...emu.manifest.adapter.top]);
  const adapterNames = new Set(emu.model.blocks.filter((b) => adapterIdx.has(b.sourceIndex)).flatMap((b) => [...b.namedVariables().keys()]));
  let total = 0;
  let outside = 0;
  for (const [n, v] of all) {
    total += v.size;
    if (!adapterNames.has(n)) outside += v.size;
  }
  return { trainedTensors: all.size, trainedParameters: total, nonAdapterParameters: outside };
}

/** Every weight of an emulator (stem, adapter and middle blocks, replacement modules), by name. */
export function allEmulatorVariables(model: CausalLM): Map<string, tf.Variable> {
  return new Map(model.namedWeights());
}

/**
 * Attacker (a): tunes every weight of a loaded emulator in place on the task's train split with the
 * LM loss, through the one training loop (data-parallel over `control.threads`, replicas built like
 * the adapter tuning's, with every weight trained).
 */
export async function fineTuneAttack(emu: LoadedEmulator, task: Task, tokenizer: TokenEncoder, hyper: TrainHyperParameters, control: RunControl = {}): Promise<TrainResult> {
  const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen ?? emu.config.maxPositions, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
  const replica = emulatorReplica(emu, { indices: [], lora: null, seed: hyper.seed, allWeights: true });
  return trainLoop(emu.model, allEmulatorVariables(emu.model), batcher, hyper, { ...control, replica, label: 'audit finetune' });
}

/**
 * Attacker (b): tunes every weight of a loaded emulator in place toward the plug-in's next-token
 * distributions on the task's train split: loss = Σ over target positions of KL(p_plug-in ‖ p_emulator)
 * (the plug-in's logits are all the attacker observes of it). Runs the one training loop with this
 * loss (on this thread).
 */
export async function distillAttack(emu: LoadedEmulator, plugIn: CausalLM, task: Task, tokenizer: TokenEncoder, hyper: TrainHyperParameters, control: RunControl = {}): Promise<TrainResult> {
  const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen ?? emu.config.maxPositions, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
  const lossSum = (ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar => klToTeacherSum(emu.model, plugIn, ids, mask);
  return trainLoop(emu.model, allEmulatorVariables(emu.model), batcher, hyper, { ...control, threads: 1, lossSum, label: 'audit distill' });
}

/**
 * Σ over masked target positions of KL(teacher ‖ student) between the next-token distributions of
 * rows of T tokens (both read the first T − 1): [b, T] ids, [b, T − 1] mask. The training loop
 * differentiates with respect to the student's variables only, so the teacher's outputs act as constants.
 */
export function klToTeacherSum(student: CausalLM, teacher: CausalLM, ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [b, t] = ids.shape;
    const inputs = tf.slice(ids, [0, 0], [b, t - 1]);
    const teacherLogp = tf.logSoftmax(teacher.head(teacher.runBlocks(teacher.embed(inputs))));
    const studentLogp = tf.logSoftmax(student.head(student.runBlocks(student.embed(inputs))));
    const kl = tf.sum(tf.mul(tf.exp(teacherLogp), tf.sub(teacherLogp, studentLogp)), -1);
    return tf.sum(tf.mul(kl, mask)) as tf.Scalar;
  });
}
