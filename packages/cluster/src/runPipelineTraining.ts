import { createLogger } from '@scaleot/core';
import type { StagePlan } from '@scaleot/model';
import {
  DEFAULT_TRAIN,
  evaluateScored,
  readTrainableWeights,
  resolveTask,
  saveAdapter,
  TaskBatcher,
  trainLoop,
  type AdapterManifest,
  type EvalResult,
  type TaskInput,
  type TrainableSelection,
  type TrainHyperParameters,
  type TrainLoopOptions,
  type TrainResult,
} from '@scaleot/offsite';
import { Tokenizer } from '@scaleot/tokenizer';
import * as tf from '@tensorflow/tfjs';
import { resolveArtifact } from './clusterConfig.js';
import { ClusterError } from './ClusterError.js';
import { PipelineRun, type PipelineRunOptions } from './PipelineRun.js';
import { PipelineTrainer } from './PipelineTrainer.js';
import { stagesHolding } from './stageWeights.js';

export interface PipelineTrainingOptions extends PipelineRunOptions {
  task: TaskInput;
  dataRoot?: string;
  /**
   * What is trained: 'all' (the owner's full fine-tuning baseline, `model` a model), 'adapters' (a data
   * owner's tuning, `model` an emulator), or these blocks whole.
   */
  trainable: TrainableSelection;
  /** Defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
  /** Evaluate the trained model on the same stages afterwards (the task's protocol, as `scaleot eval`). Default: no. */
  evaluate?: { maxBlocks?: number; maxExamples?: number; batchSize?: number };
  /** Tuning an emulator's adapters: write the adapter artifact here (what `scaleot tune` writes). */
  adapterOutDir?: string;
  overwrite?: boolean;
  onStep?: TrainLoopOptions['onStep'];
}

export interface PipelineTrainingResult {
  train: TrainResult;
  hyper: TrainHyperParameters;
  /** The trained weights by canonical name (float32). */
  weights: Map<string, { data: Float32Array; shape: number[] }>;
  /** The trained model's score, when `evaluate` was given. */
  evaluation?: EvalResult;
  /** The adapter artifact's manifest, when `adapterOutDir` was given. */
  adapter?: AdapterManifest;
  plan: StagePlan;
  attempts: number;
}

/**
 * Training on a model larger than one worker: `trainLoop` (the one training loop: batches, clipping,
 * AdamW under warmup + cosine) with its gradients computed by a pipeline of stage workers. The loop
 * process holds only the trained weights and their optimizer state (for adapters, a few blocks; for
 * full fine-tuning, the whole model's weights and moments), the stages hold the blocks. Same seed,
 * same run as single-process training up to float rounding; a stage that dies costs the step in hand.
 */
export async function runPipelineTraining(options: PipelineTrainingOptions): Promise<PipelineTrainingResult> {
  const log = options.logger ?? createLogger('cluster.pipeline-train');
  const dir = resolveArtifact(options.storageDir, options.model);
  const task = await resolveTask(options.task, options.dataRoot);
  const tokenizer = await Tokenizer.fromDir(dir);
  const hyper = { ...DEFAULT_TRAIN, ...options.hyper };
  const { weights: initial, config, emulator } = await readTrainableWeights(dir, options.trainable);
  if (options.adapterOutDir && (!emulator || options.trainable !== 'adapters')) throw new ClusterError('BAD_OPTION', 'an adapter artifact comes from tuning an emulator\'s adapters (trainable "adapters")', { where: 'adapterOutDir' });
  const variables = new Map([...initial].map(([name, w]) => [name, tf.variable(tf.tensor(w.data, w.shape, 'float32'), true)]));
  const stagesOf = await stagesHolding(dir);
  let pipeline: PipelineRun | undefined;
  try {
    pipeline = await PipelineRun.open({ ...options, logger: log });
    const trainer = new PipelineTrainer(pipeline, new Map([...variables].map(([n, v]) => [n, v.shape])), stagesOf);
    const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen ?? config.maxPositions, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
    const train = await trainLoop(null, variables, batcher, hyper, { executor: trainer, onStep: options.onStep, logger: log, label: options.trainable === 'all' ? 'pipeline full-tune' : 'pipeline tune' });
    const weights = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [name, v] of variables) weights.set(name, { data: (await v.data()) as Float32Array, shape: v.shape });
    let evaluation: EvalResult | undefined;
    if (options.evaluate) {
      const settings = options.evaluate;
      await trainer.loadTrainable(new Map([...weights].map(([n, w]) => [n, w.data])));
      evaluation = await pipeline.attempt(async (session) => {
        await trainer.sendWeights(session);
        return evaluateScored({ maxPositions: config.maxPositions, nll: session.nll }, task, tokenizer, { batchSize: settings.batchSize ?? 8, maxBlocks: settings.maxBlocks, maxExamples: settings.maxExamples, label: 'pipeline eval', logger: log });
      });
    }
    await pipeline.close();
    let adapter: AdapterManifest | undefined;
    if (options.adapterOutDir) {
      adapter = await saveAdapter(options.adapterOutDir, emulator!, new Map(variables), { lora: null, parameters: { task: task.spec.name, taskType: task.spec.type, hyper, train: { steps: train.steps, finalLoss: train.losses.at(-1) ?? null }, pipeline: { stages: pipeline.plan.stages.map((s) => [s.from, s.to]) } } }, { overwrite: options.overwrite });
    }
    return { train, hyper, weights, evaluation, adapter, plan: pipeline.plan, attempts: pipeline.attempts };
  } catch (err) {
    await pipeline?.abort(err as Error);
    throw err;
  } finally {
    tf.dispose([...variables.values()]);
  }
}
