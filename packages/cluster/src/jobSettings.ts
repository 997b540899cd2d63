import type { EvalResult, TrainHyperParameters } from '@scaleot/offsite';
import { TRAIN_HYPER_KEYS } from '@scaleot/queue';
import { ClusterError } from './ClusterError.js';

/** What an evaluate job returns (and writes to its `output`, when given). */
export interface EvaluateJobResult extends EvalResult {
  evaluationId: string;
  /** Set for the full fine-tuning baseline (`hyper.fullFineTune`). */
  fullFineTuned?: boolean;
}

export type HyperRecord = Record<string, number | string | boolean>;

/** The training fields of a payload's `hyper` record (numbers only; other keys are job switches). */
export function trainHyperOf(hyper: HyperRecord | undefined): Partial<TrainHyperParameters> {
  const out: Record<string, number> = {};
  for (const key of TRAIN_HYPER_KEYS) {
    const value = hyper?.[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ClusterError('BAD_OPTION', `hyper.${key} must be a number, got ${JSON.stringify(value)}`, { where: `hyper.${key}`, unrecoverable: true });
    out[key] = value;
  }
  return out as Partial<TrainHyperParameters>;
}

export function evalLimits(hyper: HyperRecord | undefined): { batchSize?: number; maxBlocks?: number; maxExamples?: number } {
  const pick = (key: string) => (typeof hyper?.[key] === 'number' ? (hyper[key] as number) : undefined);
  return { batchSize: pick('evalBatchSize'), maxBlocks: pick('maxBlocks'), maxExamples: pick('maxExamples') };
}
