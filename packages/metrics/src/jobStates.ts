/** Job states BullMQ reports through `getJobCounts`, in the order the `scaleot_jobs` gauge exports them. */
export const JOB_STATES = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
  'paused',
  'waiting-children',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/**
 * The states that make up the backlog autoscalers act on. BullMQ keeps prioritized jobs in a sorted set
 * and delayed jobs in another one, apart from the `wait` list, so a raw list length misses them.
 */
export const QUEUE_DEPTH_STATES = ['waiting', 'prioritized', 'delayed'] as const satisfies readonly JobState[];
