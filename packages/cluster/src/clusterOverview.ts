import type { Job, Queue } from 'bullmq';

/** One worker process connected to a queue, as the operator sees it. */
export interface WorkerView {
  /** The worker's name (`host:pid`), or its Redis client address when it has none. */
  name: string;
  queue: string;
  addr: string;
  /** Seconds since the worker's connection last spoke to Redis (blocking waits count as idle). */
  idleSeconds: number;
  connectedSeconds: number;
  /** The job it runs now, if any. */
  currentJob: { id: string; kind: string; tenant?: string; progress?: unknown; runningSeconds: number } | null;
  /** Jobs it completed in the throughput window, and that as jobs per minute. */
  completed: number;
  jobsPerMinute: number;
}

export interface QueueDepth {
  queue: string;
  waiting: number;
  prioritized: number;
  delayed: number;
  active: number;
  waitingChildren: number;
  completed: number;
  failed: number;
}

/** The throughput window of `workersOverview`, seconds. */
export const THROUGHPUT_WINDOW_S = 300;

/** Jobs waiting, running and done per queue. */
export async function queueDepths(queues: Queue[]): Promise<QueueDepth[]> {
  return Promise.all(
    queues.map(async (q) => {
      const c = await q.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'waiting-children', 'completed', 'failed');
      return { queue: q.name, waiting: c.waiting ?? 0, prioritized: c.prioritized ?? 0, delayed: c.delayed ?? 0, active: c.active ?? 0, waitingChildren: c['waiting-children'] ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0 };
    }),
  );
}

/**
 * The workers connected to the queues (Redis CLIENT LIST, as BullMQ names worker connections), the job
 * each runs (`processedBy` of the active jobs) and its throughput over the last THROUGHPUT_WINDOW_S.
 */
export async function workersOverview(queues: Queue[], now = Date.now()): Promise<WorkerView[]> {
  const out: WorkerView[] = [];
  for (const q of queues) {
    const [clients, active, completed] = await Promise.all([q.getWorkers(), q.getActive(0, 200), q.getCompleted(0, 500)]);
    const recent = completed.filter((j: Job) => (j.finishedOn ?? 0) >= now - THROUGHPUT_WINDOW_S * 1000);
    for (const c of clients) {
      const rawName = String(c.rawname ?? c.name ?? '');
      const marker = rawName.indexOf(':w:');
      const name = marker >= 0 ? rawName.slice(marker + 3) : String(c.addr ?? rawName);
      // BullMQ opens more than one connection per worker; list each worker once.
      if (out.some((w) => w.name === name && w.queue === q.name)) continue;
      const job = active.find((j: Job) => j.processedBy === name);
      const done = recent.filter((j: Job) => j.processedBy === name).length;
      out.push({
        name,
        queue: q.name,
        addr: String(c.addr ?? ''),
        idleSeconds: Number(c.idle ?? 0),
        connectedSeconds: Number(c.age ?? 0),
        currentJob: job
          ? { id: String(job.id), kind: job.name, tenant: (job.data as { tenant?: string })?.tenant, progress: job.progress, runningSeconds: job.processedOn ? (now - job.processedOn) / 1000 : 0 }
          : null,
        completed: done,
        jobsPerMinute: done / (THROUGHPUT_WINDOW_S / 60),
      });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
