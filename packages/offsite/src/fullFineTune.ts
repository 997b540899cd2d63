import type { Task, TokenEncoder } from '@scaleot/data';
import { loadModel, trainingThreads, type CausalLM } from '@scaleot/model';
import { Tokenizer } from '@scaleot/tokenizer';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { TOKENIZER_FILES } from './emulator.js';
import { TaskBatcher } from './TaskBatcher.js';
import { resolveTask, type TaskInput } from './taskInput.js';
import { DEFAULT_TRAIN, trainLoop, type TrainHyperParameters, type TrainResult } from './trainLoop.js';
import type { RunControl } from './tuneAdapter.js';

/** Tunes every weight of a model in place (the upper bound of the five-number report). */
export async function fullFineTuneInMemory(model: CausalLM, task: Task, tokenizer: TokenEncoder, hyper: TrainHyperParameters, control: RunControl = {}): Promise<TrainResult> {
  const batcher = new TaskBatcher(task, tokenizer, { batchSize: hyper.batchSize, seqLen: hyper.seqLen ?? model.config.maxPositions, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
  return trainLoop(model, new Map(model.namedWeights()), batcher, hyper, { ...control, label: 'full-tune' });
}

export interface FullFineTuneOptions extends RunControl {
  modelDir: string;
  task: TaskInput;
  dataRoot?: string;
  /** Where the tuned HF checkpoint goes (float32, tokenizer files copied). Default: not saved. */
  outDir?: string;
  /** Defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
}

/** Path-level full fine-tuning; saves the tuned checkpoint when `outDir` is given and the run completed. */
export async function fullFineTune(opts: FullFineTuneOptions): Promise<{ train: TrainResult; hyper: TrainHyperParameters; outDir?: string }> {
  const task = await resolveTask(opts.task, opts.dataRoot);
  const tokenizer = await Tokenizer.fromDir(opts.modelDir);
  const hyper = { ...DEFAULT_TRAIN, ...opts.hyper };
  const model = await loadModel(opts.modelDir);
  try {
    const train = await fullFineTuneInMemory(model, task, tokenizer, hyper, { ...opts, threads: opts.threads ?? trainingThreads() });
    if (opts.outDir && train.steps >= hyper.steps) {
      const extraFiles = TOKENIZER_FILES.map((f) => join(opts.modelDir, f)).filter((p) => existsSync(p));
      await model.save(opts.outDir, { extraFiles });
      return { train, hyper, outDir: opts.outDir };
    }
    return { train, hyper };
  } finally {
    model.dispose();
  }
}
