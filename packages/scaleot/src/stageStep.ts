import { crossEntropyPerToken, type PipelineStage } from '@scaleot/model';
import * as tf from '@tensorflow/tfjs';
import { Harmonizer } from './Harmonizer.js';
import { activeVariables, maskedModules, maskedSegment } from './harmonizerStep.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';

/**
 * Training on one pipeline stage: the stage's share of `harmonizerGradientStep` and `rolloutLoss`
 * (stage 1), and of a training step on the model's own weights (tuning, full fine-tuning). A stage
 * holds original blocks [from, to) and the harmonizers of the middle blocks among them; chained in
 * order, the stages compute the single-process loss and, backward, its gradients (the same ops on the
 * same values: only the hidden state and its gradient cross the stage boundaries).
 */

/** What one stage-1 micro-batch asks of every stage (the whole batch's normalisers, as in `GradientStepOptions`). */
export interface StageRoundSettings {
  /** 1 raw, 0 harmonizer, by original block index (the whole model's mask). */
  mask: readonly number[];
  /** Target tokens of the whole batch: the loss is Σ NLL / tokenNorm. */
  tokenNorm: number;
  /** Rows of the whole batch: a micro-batch's alignment term weighs rows / rowsNorm. */
  rowsNorm: number;
  /** Weight of the alignment term (0: LM loss only). */
  alignWeight: number;
  /** Replaced blocks in the whole model: the alignment term is the mean over them. */
  alignCount: number;
}

export interface StageBackwardInput {
  /** ids int32 [b, T − 1] on the first stage, the previous stage's hidden state [b, T − 1, d] on the others. */
  input: tf.Tensor;
  /** Last stage: the next-token targets int32 [b, T − 1]. */
  targets?: tf.Tensor2D;
  /** Last stage: 1 where a target counts, [b, T − 1]. Default: every target. */
  lossMask?: tf.Tensor2D;
  /** The stage's own weights to differentiate too (tuning: its adapter blocks; full fine-tuning: all), by name. */
  weights?: ReadonlyMap<string, tf.Variable>;
  /** Other stages: the loss's gradient w.r.t. this stage's output, from the next stage. */
  upstream?: tf.Tensor3D;
  /** Whether the previous stage needs the gradient w.r.t. this stage's input. */
  inputGrad: boolean;
}

export interface StageBackwardResult {
  /** The loss's gradient w.r.t. the stage's hidden input, when asked (never on the first stage). Caller disposes. */
  inputGrad?: tf.Tensor3D;
  /** Gradients of this stage's harmonizers the mask routes through and of `weights`, by name. Caller disposes. */
  grads: Map<string, tf.Tensor>;
  /** Last stage: Σ NLL (· lossMask) of the micro-batch (nats); 0 elsewhere. */
  nllSum: number;
  /** This stage's share of the alignment term (Σ of its terms / alignCount); 0 when off or nothing replaced here. */
  align: number;
}

/** The stage's forward with the mask's harmonizers (inference: intermediates freed block by block). */
export function stageMaskedForward(stage: PipelineStage, harmonizers: ReadonlyMap<number, Harmonizer>, mask: readonly number[], input: tf.Tensor): tf.Tensor3D {
  return stage.forward(input, undefined, maskedModules(stage.blocks, harmonizers, mask));
}

/**
 * Recomputes the stage's forward under a gradient tape (GPipe's re-materialisation: a stage keeps only
 * its micro-batches' inputs between the forward and the backward pass) and returns the gradients of
 * its harmonizers and, when asked, of its input. The last stage starts from the LM loss
 * Σ NLL / tokenNorm, the others from `upstream`; every stage adds its share of the alignment term.
 */
export function stageBackward(stage: PipelineStage, harmonizers: ReadonlyMap<number, Harmonizer>, settings: StageRoundSettings, step: StageBackwardInput): StageBackwardResult {
  const active = activeVariables(harmonizers, settings.mask);
  for (const [name, v] of step.weights ?? []) active.set(name, v);
  const names = [...active.keys()];
  const vars = [...active.values()];
  const wantInput = step.inputGrad && !stage.first;
  const xs: tf.Tensor[] = wantInput ? [step.input, ...vars] : vars;
  if (xs.length === 0) throw new ScaleotMethodError('BAD_OPTION', `stage [${stage.range.from}, ${stage.range.to}) has nothing to differentiate: no weight or harmonizer of it is trained and no input gradient is asked`, { where: 'stageBackward' });
  if (stage.last ? !step.targets : !step.upstream) throw new ScaleotMethodError('BAD_OPTION', stage.last ? 'the last stage needs the targets' : 'a stage before the last needs the upstream gradient', { where: 'stageBackward' });
  const rows = step.input.shape[0];
  const alignScale = (settings.alignWeight * rows) / settings.rowsNorm;
  const kept: { nll?: tf.Scalar; align?: tf.Scalar } = {};
  const { value, grads } = tf.engine().gradients(
    () => {
      const h0 = stage.first ? stage.stem.embed(step.input as tf.Tensor2D) : (step.input as tf.Tensor3D);
      const { h, terms } = maskedSegment(stage.blocks, harmonizers, settings.mask, h0, settings.alignWeight > 0);
      let loss: tf.Scalar;
      if (stage.last) {
        const tokenNll = crossEntropyPerToken(stage.stem.head(h), step.targets!);
        const nll = tf.sum(step.lossMask ? tf.mul(tokenNll, step.lossMask) : tokenNll) as tf.Scalar;
        kept.nll = tf.keep(nll);
        loss = tf.div(nll, settings.tokenNorm) as tf.Scalar;
      } else {
        // Σ h ⊙ upstream: its gradient is exactly the vector-Jacobian product with the upstream gradient.
        loss = tf.sum(tf.mul(h, step.upstream!)) as tf.Scalar;
      }
      if (terms.length > 0) {
        const align = tf.div(tf.addN(terms), settings.alignCount) as tf.Scalar;
        kept.align = tf.keep(align);
        loss = tf.add(loss, tf.mul(align, alignScale)) as tf.Scalar;
      }
      return loss;
    },
    xs,
    undefined,
    true,
  );
  value.dispose();
  const nllSum = kept.nll ? kept.nll.dataSync()[0] : 0;
  const align = kept.align ? kept.align.dataSync()[0] : 0;
  tf.dispose([kept.nll, kept.align].filter((t): t is tf.Scalar => t !== undefined));
  const out = new Map<string, tf.Tensor>();
  const offset = wantInput ? 1 : 0;
  names.forEach((name, i) => out.set(name, grads[offset + i] ?? tf.zerosLike(vars[i])));
  return { inputGrad: wantInput ? (grads[0] as tf.Tensor3D) : undefined, grads: out, nllSum, align };
}

/**
 * Brings a stage's harmonizers to the weights a coordinator sent (`harmonizers.<i>.…`, float32 with
 * shapes): existing ones are assigned in place, new ones created (rank from the weights).
 */
export function syncHarmonizers(harmonizers: Map<number, Harmonizer>, weights: ReadonlyMap<string, { data: Float32Array; shape: readonly number[] }>, dModel: number, eps: number): void {
  const byIndex = new Map<number, Map<string, Float32Array>>();
  for (const [name, w] of weights) {
    const m = /^harmonizers\.(\d+)\./.exec(name);
    if (!m) throw new ScaleotMethodError('BAD_GRADIENT', `"${name}" is not a harmonizer parameter`, { where: 'syncHarmonizers' });
    const i = Number(m[1]);
    if (!byIndex.has(i)) byIndex.set(i, new Map());
    byIndex.get(i)!.set(name, w.data);
  }
  for (const [i, named] of byIndex) {
    const existing = harmonizers.get(i);
    if (!existing) {
      harmonizers.set(i, new Harmonizer(i, dModel, { eps, weights: named }));
      continue;
    }
    for (const [name, v] of existing.namedVariables()) {
      const data = named.get(name);
      if (!data) throw new ScaleotMethodError('MISSING_TENSOR', `harmonizer weights lack "${name}"`, { where: name });
      if (data.length !== v.size) throw new ScaleotMethodError('SHAPE_MISMATCH', `"${name}" has ${data.length} values, the harmonizer holds [${v.shape}]`, { where: name });
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
    }
  }
}
