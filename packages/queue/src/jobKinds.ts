import { InvalidJobPayloadError } from './InvalidJobPayloadError.js';
import { findPayloadHazards, type PayloadLimits } from './payloadGuard.js';
import { QueueError } from './QueueError.js';
import { artifactRef, evaluateHyperSchema, presetFields, trainHyperSchema } from './contracts.js';
import { s, type Infer, type Schema } from './schema.js';

const id = s.string({ maxLength: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:-]*$/, patternName: 'an id (letters, digits and . _ : -, starting with a letter or digit)' });
const count = (max: number) => s.int({ min: 1, max });
const index = s.int({ min: 0 });
const version = s.int({ min: 0 });
const zmqAddress = s.string({ maxLength: 256, pattern: /^(tcp|ipc|inproc):\/\/\S+$/, patternName: 'a ZeroMQ address such as tcp://10.0.0.5:5557' });

const windowLength = s.optional(count(1 << 16));

/** Which training data a job reads: explicit windows or documents, or a seed that reproduces a sample. */
export const batchSpecSchema = s.tagged('type', {
  windows: s.object({ type: s.literal('windows'), dataset: artifactRef, windowIndices: s.array(index, { minLength: 1 }), windowLength }),
  documents: s.object({ type: s.literal('documents'), dataset: artifactRef, documentIndices: s.array(index, { minLength: 1 }), windowLength }),
  seeded: s.object({ type: s.literal('seeded'), dataset: artifactRef, seed: s.int(), count: count(1_000_000), windowLength }),
});
export type BatchSpec = Infer<typeof batchSpecSchema>;

const shardIndexBelowCount = (payload: { shardIndex: number; shardCount: number }) =>
  payload.shardIndex < payload.shardCount ? undefined : [{ path: '.shardIndex', message: `must be < shardCount (${payload.shardCount}), got ${payload.shardIndex}` }];

/**
 * Every job kind of the project and its payload schema. Payloads carry ids, references, addresses and
 * small numbers; tensors travel over @scaleot/transport (`resultAddress`, `paramsAddress`).
 */
export const jobSchemas = {
  /** Stage 1 harmonizer-gradient shard: one data-parallel slice of a round (method §2, training step). */
  'stage1.shard': s.refine(
    s.object({
      tenant: s.optional(id),
      runId: id,
      round: index,
      shardIndex: index,
      shardCount: count(4096),
      batch: batchSpecSchema,
      paramsVersion: version,
      paramsAddress: s.optional(zmqAddress),
      resultAddress: zmqAddress,
    }),
    shardIndexBelowCount,
  ),
  /** Stage 1 importance rollout: the LM loss of one candidate mask (method §2, reinforcement step). */
  'stage1.rollout': s.object({
    tenant: s.optional(id),
    runId: id,
    round: index,
    candidateIndex: index,
    /** 1 = block kept raw, 0 = routed through its harmonizer; one entry per middle block. */
    mask: s.array(s.literal(0, 1), { minLength: 1, maxLength: 4096 }),
    paramsVersion: version,
    batch: batchSpecSchema,
    paramsAddress: s.optional(zmqAddress),
    resultAddress: zmqAddress,
  }),
  /** Parent of a round's shard and rollout jobs: runs once they all completed, with their results. */
  'stage1.round': s.object({
    tenant: s.optional(id),
    runId: id,
    round: index,
    paramsVersion: version,
    shardCount: count(4096),
    candidateCount: count(256),
  }),
  /** Stage 2: emulator from the triplet (N_a, alpha, beta) (method §3). */
  'emulator.build': s.object({
    tenant: id,
    emulatorId: id,
    model: artifactRef,
    stage1: artifactRef,
    // The preset's bounds, from the one definition the API checks too.
    adapterBlocks: presetFields.nAdapter,
    alpha: presetFields.alpha,
    beta: presetFields.beta,
    output: artifactRef,
  }),
  /** Data owner tunes adapters on an emulator. */
  tune: s.object({
    tenant: id,
    tuneId: id,
    emulator: artifactRef,
    task: artifactRef,
    output: artifactRef,
    hyper: trainHyperSchema,
  }),
  /** Tuned adapters plugged into the full model (method §4). */
  plugin: s.object({
    tenant: id,
    pluginId: id,
    model: artifactRef,
    adapters: artifactRef,
    output: artifactRef,
  }),
  /**
   * One stage of a pipeline-parallel run (a model larger than one worker): load blocks
   * [fromBlock, toBlock) of `model`, bind an inbox, report it to `controlAddress`, then forward every
   * micro-batch to the next stage (the last one sends results to `controlAddress`) until told to end.
   */
  'pipeline.stage': s.refine(
    s.object({
      tenant: s.optional(id),
      runId: id,
      model: artifactRef,
      stageIndex: index,
      stageCount: count(4096),
      fromBlock: index,
      toBlock: count(1_000_000),
      controlAddress: zmqAddress,
    }),
    (p: { stageIndex: number; stageCount: number; fromBlock: number; toBlock: number }) => {
      const issues: { path: string; message: string }[] = [];
      if (p.stageIndex >= p.stageCount) issues.push({ path: '.stageIndex', message: `must be < stageCount (${p.stageCount}), got ${p.stageIndex}` });
      if (p.fromBlock >= p.toBlock) issues.push({ path: '.toBlock', message: `must be > fromBlock (${p.fromBlock}), got ${p.toBlock}` });
      return issues.length > 0 ? issues : undefined;
    },
  ),
  evaluate: s.object({
    tenant: id,
    evaluationId: id,
    model: artifactRef,
    task: artifactRef,
    output: s.optional(artifactRef),
    metrics: s.optional(s.array(id, { maxLength: 64 })),
    hyper: s.optional(evaluateHyperSchema),
  }),
} satisfies Record<string, Schema<object>>;

export type JobKind = keyof typeof jobSchemas;
export type JobPayload<K extends JobKind> = Infer<(typeof jobSchemas)[K]>;
export type AnyJobPayload = { [K in JobKind]: JobPayload<K> }[JobKind];

export const JOB_KINDS = Object.keys(jobSchemas) as JobKind[];

export function isJobKind(kind: string): kind is JobKind {
  return Object.hasOwn(jobSchemas, kind);
}

/**
 * The payload typed as its kind's, or InvalidJobPayloadError listing each problem with its field path.
 * Tensors and bulk arrays are refused first, with a pointer to @scaleot/transport.
 */
export function validateJobPayload<K extends JobKind>(kind: K, payload: unknown, limits?: PayloadLimits): JobPayload<K> {
  if (!isJobKind(kind)) {
    throw new QueueError('UNKNOWN_JOB_KIND', `no job kind "${String(kind)}" (known: ${JOB_KINDS.join(', ')})`);
  }
  const hazards = findPayloadHazards(payload, limits);
  if (hazards.length > 0) throw new InvalidJobPayloadError(kind, hazards);
  const issues: { path: string; message: string }[] = [];
  if (!(jobSchemas[kind] as Schema<unknown>).check(payload, '$', issues)) throw new InvalidJobPayloadError(kind, issues);
  return payload as JobPayload<K>;
}
