import type { Logger } from '@scaleot/core';
import type { Task, TokenEncoder } from '@scaleot/data';
import { crossEntropyPerToken, type CausalLM } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { TaskBatcher } from './TaskBatcher.js';
import { trainLoop, type TrainHyperParameters, type TrainResult, type TrainStepInfo } from './trainLoop.js';

export interface DistillOptions {
  /** Weight of the normalised hidden-state MSE. Default 30 (Offsite-Tuning). */
  mseWeight?: number;
  onStep?: (info: TrainStepInfo) => void;
  logger?: Logger;
}

/**
 * Offsite-Tuning's emulator distillation: loss = LM loss of the emulator + w · MSE(h_emu, h_full) /
 * mean(h_full²), where h is the hidden state after the middle stack (full model: its original middle
 * blocks; emulator: its kept middle blocks), both fed the output of the shared bottom adapter blocks.
 * Only the emulator's middle blocks train. The teacher must be the full model the emulator was cut from.
 */
export async function distillEmulator(
  teacher: CausalLM,
  student: CausalLM,
  layout: { nBottom: number; nTop: number },
  corpus: Task,
  tokenizer: TokenEncoder,
  hyper: TrainHyperParameters,
  opts: DistillOptions = {},
): Promise<TrainResult> {
  const w = opts.mseWeight ?? 30;
  const { nBottom, nTop } = layout;
  const teacherMidEnd = teacher.blocks.length - nTop;
  const studentMidEnd = student.blocks.length - nTop;
  const variables = new Map<string, tf.Variable>();
  for (const block of student.blocks.slice(nBottom, studentMidEnd)) for (const [n, v] of block.namedVariables()) variables.set(n, v);
  const seqLen = hyper.seqLen ?? student.config.maxPositions;
  const batcher = new TaskBatcher(corpus, tokenizer, { batchSize: hyper.batchSize, seqLen, maxTrainRows: hyper.maxTrainRows, seed: hyper.seed });
  const lossSum = (ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar =>
    tf.tidy(() => {
      const [b, t] = ids.shape;
      const inputs = tf.slice(ids, [0, 0], [b, t - 1]);
      const targets = tf.slice(ids, [0, 1], [b, t - 1]);
      // The bottom adapters are frozen and identical in both models: compute their output once.
      const bottom = teacher.runBlocks(teacher.embed(inputs), 0, nBottom);
      const target = teacher.runBlocks(bottom, nBottom, teacherMidEnd);
      const hidden = student.runBlocks(bottom, nBottom, studentMidEnd);
      const logits = student.head(student.runBlocks(hidden, studentMidEnd));
      const nllSum = tf.sum(tf.mul(crossEntropyPerToken(logits, targets), mask));
      const mse = tf.div(tf.mean(tf.square(tf.sub(hidden, target))), tf.mean(tf.square(target)));
      return tf.add(nllSum, tf.mul(mse, tf.mul(tf.sum(mask), w))) as tf.Scalar;
    });
  return trainLoop(student, variables, batcher, hyper, { lossSum, onStep: opts.onStep, logger: opts.logger, label: 'distill' });
}
