import { JOB_STATES, QUEUE_DEPTH_STATES } from './jobStates.js';
import type { Gauge } from 'prom-client';

/** What the collector needs from a queue; a BullMQ `Queue` satisfies it. */
export interface QueueLike {
  readonly name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/** Counts of one queue, per state, plus the derived depth. */
export interface QueueCounts {
  queue: string;
  counts: Record<string, number>;
  depth: number;
}

/** The two gauges the collector fills; {@link ScaleotMetrics} has them. */
export interface QueueGauges {
  jobs: Gauge<'queue' | 'state'>;
  queueDepth: Gauge<'queue'>;
}

/**
 * Reads the job counts of each queue (one Redis round trip per queue) and sets `scaleot_jobs` and
 * `scaleot_queue_depth` (waiting + prioritized + delayed). `ScaleotMetrics.trackQueue` runs it at
 * scrape time; call it directly to refresh on your own schedule.
 */
export async function collectQueueMetrics(
  queues: QueueLike | readonly QueueLike[],
  metrics: QueueGauges,
): Promise<QueueCounts[]> {
  const list: readonly QueueLike[] = isQueueList(queues) ? queues : [queues];
  return Promise.all(
    list.map(async (queue) => {
      const counts = await queue.getJobCounts(...JOB_STATES);
      for (const state of JOB_STATES) metrics.jobs.set({ queue: queue.name, state }, counts[state] ?? 0);
      const depth = QUEUE_DEPTH_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
      metrics.queueDepth.set({ queue: queue.name }, depth);
      return { queue: queue.name, counts, depth };
    }),
  );
}

function isQueueList(queues: QueueLike | readonly QueueLike[]): queues is readonly QueueLike[] {
  return Array.isArray(queues);
}
