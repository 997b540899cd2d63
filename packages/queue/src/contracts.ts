import { s, type Infer } from './schema.js';

/**
 * The bounds of every user-facing setting, defined once. The HTTP API (its fastify route schema is
 * `schema.json`), the job payloads (`jobSchemas`) and the settings files (coordinator config, CLI
 * configs) are all checked against these schemas, so a value one boundary accepts is never refused
 * by the next one halfway through a run.
 */

/** Most adapter blocks any model of the project has (a bound against absurd values; the model's own n_layer is checked where it is known). */
export const MAX_ADAPTER_BLOCKS = 1024;

/** The privacy preset (method §3): N_a adapter blocks (≥ 1, leaving middle blocks), α and β in [0, 1). */
export const presetFields = {
  nAdapter: s.describe(s.int({ min: 1, max: MAX_ADAPTER_BLOCKS }), 'N_a: adapter blocks (sandwich, split bottom/top); at least 1 and fewer than the model\'s blocks'),
  alpha: s.describe(s.number({ min: 0, lessThan: 1 }), 'α: fraction of middle blocks replaced by harmonizers, in [0, 1)'),
  beta: s.describe(s.number({ min: 0, lessThan: 1 }), 'β: fraction of attention rank removed (SRC), in [0, 1)'),
};
export const privacyPresetSchema = s.object(presetFields);
export type PrivacyPresetContract = Infer<typeof privacyPresetSchema>;

const optionalInt = (min: number, max: number) => s.optional(s.int({ min, max }));

/** The training fields (TrainHyperParameters of @scaleot/offsite), each with its range. */
export const trainHyperFields = {
  steps: optionalInt(1, 1_000_000),
  batchSize: optionalInt(1, 65_536),
  microBatchSize: optionalInt(1, 65_536),
  seqLen: optionalInt(1, 1 << 16),
  lr: s.optional(s.number({ greaterThan: 0, max: 10 })),
  warmupSteps: optionalInt(0, 1_000_000),
  finalLrFraction: s.optional(s.number({ min: 0, max: 1 })),
  gradClip: s.optional(s.number({ greaterThan: 0, max: 1e6 })),
  weightDecay: s.optional(s.number({ min: 0, max: 10 })),
  seed: optionalInt(0, 2 ** 31 - 1),
  maxTrainRows: optionalInt(1, 1 << 30),
};
export const TRAIN_HYPER_KEYS = Object.keys(trainHyperFields) as (keyof typeof trainHyperFields)[];

/** Cross-field rules of a training schedule. */
function scheduleRules(h: { steps?: number; warmupSteps?: number; batchSize?: number; microBatchSize?: number }) {
  const issues: { path: string; message: string }[] = [];
  if (h.steps !== undefined && h.warmupSteps !== undefined && h.warmupSteps > h.steps) issues.push({ path: '.warmupSteps', message: `must be <= steps (${h.steps}), got ${h.warmupSteps}` });
  if (h.batchSize !== undefined && h.microBatchSize !== undefined && h.microBatchSize > h.batchSize) issues.push({ path: '.microBatchSize', message: `must be <= batchSize (${h.batchSize}), got ${h.microBatchSize}` });
  return issues.length ? issues : undefined;
}

/** Training settings of adapter tuning and full fine-tuning: known keys only, each in range. */
export const trainHyperSchema = s.refine(s.object(trainHyperFields), scheduleRules);
export type TrainHyperContract = Infer<typeof trainHyperSchema>;

/** Evaluation limits. */
export const evalLimitFields = {
  maxBlocks: optionalInt(1, 1_000_000),
  maxExamples: optionalInt(1, 1 << 30),
  evalBatchSize: optionalInt(1, 65_536),
};
export const evalLimitsSchema = s.object(evalLimitFields);

/** A path or URI in shared storage, without `..` segments. */
export const artifactRef = s.string({
  pattern: /^(?!.*(^|[/\\])\.\.([/\\]|$))[^\0]+$/,
  patternName: 'an artifact reference (a path or URI without ".." segments)',
});

/** `hyper` of an evaluate job: limits, and for the full fine-tuning baseline its training settings; `adapter` plugs one in. */
export const evaluateHyperSchema = s.refine(
  s.object({ ...evalLimitFields, ...trainHyperFields, fullFineTune: s.optional(s.boolean()), adapter: s.optional(artifactRef) }),
  scheduleRules,
);

/** Stage-1 settings (Stage1HyperParameters of @scaleot/scaleot), each with its range. */
export const stage1HyperSchema = s.refine(
  s.object({
    nAdapter: optionalInt(1, MAX_ADAPTER_BLOCKS),
    bottom: optionalInt(0, MAX_ADAPTER_BLOCKS),
    groupSize: optionalInt(1, 4096),
    keepFraction: s.optional(s.number({ greaterThan: 0, max: 1 })),
    rank: optionalInt(1, 1 << 16),
    initStd: s.optional(s.number({ min: 0, max: 10 })),
    // The schedule's fields share the training bounds (defined once, above).
    steps: trainHyperFields.steps,
    batchSize: trainHyperFields.batchSize,
    microBatchSize: trainHyperFields.microBatchSize,
    seqLen: trainHyperFields.seqLen,
    lr: trainHyperFields.lr,
    warmupSteps: trainHyperFields.warmupSteps,
    finalLrFraction: trainHyperFields.finalLrFraction,
    gradClip: trainHyperFields.gradClip,
    weightDecay: trainHyperFields.weightDecay,
    rlEvery: optionalInt(1, 1_000_000),
    candidates: optionalInt(1, 256),
    rlBatchSize: optionalInt(1, 65_536),
    eta: s.optional(s.number({ min: 0, max: 100 })),
    scoreClamp: s.optional(s.number({ greaterThan: 0, max: 1e6 })),
    advantageEps: s.optional(s.number({ greaterThan: 0, max: 1 })),
    alignWeight: s.optional(s.number({ min: 0, max: 1e6 })),
    seed: trainHyperFields.seed,
  }),
  (h) => {
    const issues = scheduleRules(h) ?? [];
    if (h.nAdapter !== undefined && h.bottom !== undefined && h.bottom > h.nAdapter) issues.push({ path: '.bottom', message: `must be <= nAdapter (${h.nAdapter}), got ${h.bottom}` });
    return issues.length ? issues : undefined;
  },
);
export type Stage1HyperContract = Infer<typeof stage1HyperSchema>;
