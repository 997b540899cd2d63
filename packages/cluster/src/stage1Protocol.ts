import type { ResultKey } from '@scaleot/transport';

/**
 * What coordinator and workers agree on for one stage-1 round, besides the job payloads.
 *
 * A round publishes two parameter versions: phase 0 (harmonizers before the round's update, read by
 * the shard jobs) and phase 1 (after it, read by the rollout jobs: the single-process trainer scores
 * candidates with the updated harmonizers). Versions also carry the coordinator's epoch (incremented
 * at every start), so a worker's cached snapshot from before a coordinator restart can never pass for
 * a version of the new incarnation.
 */
export const ROUND_BITS = 2 ** 20;
const EPOCH_STRIDE = 2 * ROUND_BITS;

export function paramsVersion(epoch: number, round: number, phase: 0 | 1): number {
  return epoch * EPOCH_STRIDE + 2 * round + phase;
}

export function decodeVersion(version: number): { epoch: number; round: number; phase: 0 | 1 } {
  const epoch = Math.floor(version / EPOCH_STRIDE);
  const rest = version - epoch * EPOCH_STRIDE;
  return { epoch, round: Math.floor(rest / 2), phase: (rest % 2) as 0 | 1 };
}

/** JSON sent with every published parameter set. */
export interface Stage1ParamsMeta {
  runId: string;
  round: number;
  phase: 0 | 1;
  /** The full model (absolute, or relative to the storage dir). */
  model: string;
  /** Middle block indices (one harmonizer each). */
  middle: number[];
  rank: number;
  eps: number;
  /** The round's training mask (1 raw, 0 harmonizer), by original block index. */
  mask: number[];
  /** Target tokens and rows of the whole round batch: shards normalise by them so their gradients sum. */
  tokens: number;
  rows: number;
  microBatchSize: number;
  alignWeight: number;
}

/** The key a shard's gradients travel under (both sides derive it from the payload). */
export function shardResultKey(runId: string, version: number, shardIndex: number): ResultKey {
  return { runId, round: version, jobId: `shard-${shardIndex}` };
}

/** What a shard job returns (gradients go over ZeroMQ, not into Redis). */
export interface ShardJobResult {
  shardIndex: number;
  version: number;
  stale?: boolean;
  attempts?: number;
  duplicate?: boolean;
  bytes?: number;
  computeSeconds?: number;
}

/** What a rollout job returns: the candidate's loss travels as the job result. */
export interface RolloutJobResult {
  candidateIndex: number;
  version: number;
  loss?: number;
  stale?: boolean;
  computeSeconds?: number;
}

/** Metadata sent next to a shard's gradients. */
export interface ShardResultMeta {
  nllSum: number;
  tokens: number;
  alignSum: number;
  rows: number;
  computeSeconds: number;
}
