import { QueueError } from './QueueError.js';

/** Service tiers; each maps to a BullMQ priority (lower runs first). */
export type TenantTier = 'premium' | 'standard' | 'batch';

/**
 * BullMQ priorities per tier. Every job gets one: BullMQ runs jobs without a priority before all
 * prioritized ones, so leaving some unprioritized would let them jump every tier.
 */
export const TIER_PRIORITY: Readonly<Record<TenantTier, number>> = { premium: 1, standard: 10, batch: 100 };

/** At most `max` jobs of a tenant start in any window of `durationMs`, across all workers of a queue. */
export interface RateLimit {
  max: number;
  durationMs: number;
}

export interface TenantPolicy {
  /** Default: the queue's `defaultTier` (itself `standard` by default). */
  tier?: TenantTier;
  /** Default: the worker's `defaultRateLimit` (none by default). */
  rateLimit?: RateLimit;
}

/** Policies by tenant id; share one object between producers and workers. */
export type TenantPolicies = Readonly<Record<string, TenantPolicy>>;

/** Tenant of jobs whose payload names none (model-owner work such as stage 1). */
export const DEFAULT_TENANT = 'owner';

export function assertRateLimit(limit: RateLimit, where: string): void {
  if (!Number.isSafeInteger(limit.max) || limit.max < 1 || !Number.isSafeInteger(limit.durationMs) || limit.durationMs < 1) {
    throw new QueueError('INVALID_OPTIONS', `rate limit must be {max >= 1, durationMs >= 1} integers, got ${JSON.stringify(limit)}`, { where });
  }
}
