export { InvalidJobPayloadError, type PayloadIssue } from './InvalidJobPayloadError.js';
export { QueueError, type QueueErrorCode } from './QueueError.js';
export { s, type Schema, type OptionalSchema, type Infer, type InferObject, type JsonSchema } from './schema.js';
export {
  MAX_ADAPTER_BLOCKS,
  presetFields,
  privacyPresetSchema,
  trainHyperFields,
  trainHyperSchema,
  TRAIN_HYPER_KEYS,
  evalLimitFields,
  evalLimitsSchema,
  evaluateHyperSchema,
  stage1HyperSchema,
  type PrivacyPresetContract,
  type TrainHyperContract,
  type Stage1HyperContract,
} from './contracts.js';
export { findPayloadHazards, type PayloadLimits } from './payloadGuard.js';
export {
  jobSchemas,
  batchSpecSchema,
  validateJobPayload,
  isJobKind,
  JOB_KINDS,
  type JobKind,
  type JobPayload,
  type AnyJobPayload,
  type BatchSpec,
} from './jobKinds.js';
export { TIER_PRIORITY, DEFAULT_TENANT, type TenantTier, type TenantPolicy, type TenantPolicies, type RateLimit } from './tenants.js';
export { defaultRedisConnection, type RedisConnection } from './redisConnection.js';
export { TenantRateLimiter } from './TenantRateLimiter.js';
export {
  JobQueue,
  createQueue,
  DEFAULT_JOB_OPTIONS,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  type JobQueueOptions,
  type AddJobOptions,
  type FlowSpec,
  type QueueDepth,
} from './JobQueue.js';
export { JobWorker, type JobWorkerOptions, type JobHandler, type JobHandlers, type JobContext, type JobWorkerEvents } from './JobWorker.js';
export { UnrecoverableError } from 'bullmq';
export { parseJobRoutes, parseQueueNames, queueForKind, routedQueues, singleQueueRoutes, type JobRoutes } from './jobRoutes.js';
export { JobRouter } from './JobRouter.js';
