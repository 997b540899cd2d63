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
 * The stage's backward pass for one micro-batch, block by block (GPipe's re-materialisation, down to
 * the block: the stage keeps only its micro-batches' inputs between the forward and the backward pass,
 * recomputes its forward without a tape keeping each block's input, then differentiates one block at a
 * time from the top, so it holds one block's intermediates at a time, not the whole stage's). Returns
 * the gradients of the harmonizers the mask routes through and of `weights`, and, when asked, of the
 * input. The last stage starts from the LM loss Σ NLL / tokenNorm, the others from `upstream`; every
 * replaced block adds its share of the alignment term.
 */
export function stageBackward(stage: PipelineStage, harmonizers: ReadonlyMap<number, Harmonizer>, settings: StageRoundSettings, step: StageBackwardInput): StageBackwardResult {
  if (stage.last ? !step.targets : !step.upstream) throw new ScaleotMethodError('BAD_OPTION', stage.last ? 'the last stage needs the targets' : 'a stage before the last needs the upstream gradient', { where: 'stageBackward' });
  const modules = maskedModules(stage.blocks, harmonizers, settings.mask);
  const active = activeVariables(harmonizers, settings.mask);
  const trained = (named: Iterable<[string, tf.Variable]>) => [...named].filter(([name]) => active.has(name) || step.weights?.has(name) === true);
  const moduleVars = modules.map((m) => trained(m.namedVariables()));
  const embeddingVars = stage.first ? trained(stage.stem.embeddingVariables()) : [];
  const headVars = stage.last ? trained(stage.stem.headVariables()) : [];
  const wantInput = step.inputGrad && !stage.first;
  // needsGrad[j]: the gradient w.r.t. module j's input is needed (something below it trains, or the previous stage asks).
  const needsGrad: boolean[] = [wantInput || embeddingVars.length > 0];
  moduleVars.forEach((vars, j) => needsGrad.push(needsGrad[j] || vars.length > 0));
  if (!needsGrad[modules.length] && headVars.length === 0) throw new ScaleotMethodError('BAD_OPTION', `stage [${stage.range.from}, ${stage.range.to}) has nothing to differentiate: no weight or harmonizer of it is trained and no input gradient is asked`, { where: 'stageBackward' });
  const rows = step.input.shape[0];
  const alignScale = (settings.alignWeight * rows) / settings.rowsNorm;
  const out = new Map<string, tf.Tensor>();
  const accumulate = (vars: [string, tf.Variable][], grads: (tf.Tensor | undefined)[]) =>
    vars.forEach(([name, v], i) => {
      const g = grads[i] ?? tf.zerosLike(v);
      const prev = out.get(name);
      out.set(name, prev ? tf.add(prev, g) : g);
      if (prev) tf.dispose([prev, g]);
    });
  /** Gradients of `loss()` w.r.t. `x` (when given) and `vars`. */
  const differentiate = (loss: () => tf.Scalar, x: tf.Tensor | undefined, vars: [string, tf.Variable][]): tf.Tensor | undefined => {
    const { value, grads } = tf.engine().gradients(loss, [...(x ? [x] : []), ...vars.map(([, v]) => v)], undefined, true);
    value.dispose();
    accumulate(vars, x ? grads.slice(1) : grads);
    return x ? grads[0] : undefined;
  };

  // Forward without a tape, keeping each module's input.
  const inputs: tf.Tensor3D[] = [];
  let h = stage.first ? tf.tidy(() => stage.stem.embed(step.input as tf.Tensor2D)) : (step.input as tf.Tensor3D);
  for (const m of modules) {
    inputs.push(h);
    h = tf.tidy(() => m.apply(h));
  }
  const owned = (t: tf.Tensor | undefined) => t !== undefined && t !== step.input && t !== step.upstream;
  let nllSum = 0;
  let align = 0;
  let upstream: tf.Tensor3D | undefined = step.upstream;
  if (stage.last) {
    let nll: tf.Scalar | undefined;
    upstream = differentiate(
      () => {
        const tokenNll = crossEntropyPerToken(stage.stem.head(h), step.targets!);
        nll = tf.keep(tf.sum(step.lossMask ? tf.mul(tokenNll, step.lossMask) : tokenNll) as tf.Scalar);
        return tf.div(nll, settings.tokenNorm) as tf.Scalar;
      },
      needsGrad[modules.length] ? h : undefined,
      headVars,
    ) as tf.Tensor3D | undefined;
    nllSum = nll!.dataSync()[0];
    nll!.dispose();
  }
  if (owned(h) && !inputs.includes(h)) h.dispose();
  // Block by block from the top: the gradient w.r.t. each block's input is the next one down's upstream.
  for (let j = modules.length - 1; j >= 0; j--) {
    const x = inputs[j];
    if (needsGrad[j + 1]) {
      const replaced = modules[j] !== stage.blocks[j];
      const dy = upstream!;
      let term: tf.Scalar | undefined;
      const dx = differentiate(
        () => {
          const { h: y, terms } = maskedSegment([stage.blocks[j]], harmonizers, settings.mask, x, replaced && settings.alignWeight > 0);
          // Σ y ⊙ dy: its gradient is exactly the vector-Jacobian product with the upstream gradient.
          let loss = tf.sum(tf.mul(y, dy)) as tf.Scalar;
          if (terms.length > 0) {
            term = tf.keep(tf.div(tf.addN(terms), settings.alignCount) as tf.Scalar);
            loss = tf.add(loss, tf.mul(term, alignScale)) as tf.Scalar;
          }
          return loss;
        },
        needsGrad[j] ? x : undefined,
        moduleVars[j],
      ) as tf.Tensor3D | undefined;
      if (term) {
        align += term.dataSync()[0];
        term.dispose();
      }
      if (owned(dy)) dy.dispose();
      upstream = dx;
    }
    if (owned(x)) x.dispose();
  }
  if (embeddingVars.length > 0) {
    const dy = upstream!;
    differentiate(() => tf.sum(tf.mul(stage.stem.embed(step.input as tf.Tensor2D), dy)) as tf.Scalar, undefined, embeddingVars);
    if (owned(dy)) dy.dispose();
    upstream = undefined;
  }
  const inputGrad = wantInput ? upstream : undefined;
  if (!wantInput && owned(upstream)) upstream!.dispose();
  return { inputGrad, grads: out, nllSum, align };
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
