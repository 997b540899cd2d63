import { DEFAULT_QUEUE_NAME } from './JobQueue.js';
import { isJobKind, JOB_KINDS, type JobKind } from './jobKinds.js';
import { QueueError } from './QueueError.js';

/**
 * Which queue each job kind goes to, so that worker groups with different hardware consume different
 * work (e.g. stage-1 shards and tuning on GPU workers, evaluation on CPU workers). Kinds not listed go
 * to `defaultQueue`.
 */
export interface JobRoutes {
  defaultQueue: string;
  kinds: Partial<Record<JobKind, string>>;
}

// A DNS-label-like name: what the Helm chart puts into KEDA queries and BullMQ accepts in Redis keys.
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function checkQueueName(name: string, where: string): string {
  if (!QUEUE_NAME.test(name)) {
    throw new QueueError('INVALID_OPTIONS', `queue name "${name}" is not valid: use letters, digits, '.', '_' or '-' (at most 63, no ':' or spaces)`, { where });
  }
  return name;
}

/** Every kind to one queue (the single-queue setup of the demo and tests). */
export function singleQueueRoutes(queue: string = DEFAULT_QUEUE_NAME): JobRoutes {
  return { defaultQueue: checkQueueName(queue, 'queue'), kinds: {} };
}

/**
 * Parses `kind=queue,kind=queue,*=queue` (SCALEOT_JOB_ROUTES); `*` names the default queue, which is
 * `fallbackQueue` when absent. Empty or unset = everything to `fallbackQueue`. Unknown kinds, repeated
 * kinds and bad queue names are refused with a QueueError naming the entry.
 */
export function parseJobRoutes(spec: string | undefined, fallbackQueue: string = DEFAULT_QUEUE_NAME, where = 'SCALEOT_JOB_ROUTES'): JobRoutes {
  const routes: JobRoutes = { defaultQueue: checkQueueName(fallbackQueue, where), kinds: {} };
  const seen = new Set<string>();
  for (const raw of (spec ?? '').split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1) throw new QueueError('INVALID_OPTIONS', `"${entry}" is not kind=queue (e.g. tune=gpu,*=cpu)`, { where });
    const kind = entry.slice(0, eq).trim();
    const queue = checkQueueName(entry.slice(eq + 1).trim(), where);
    if (seen.has(kind)) throw new QueueError('INVALID_OPTIONS', `job kind "${kind}" is routed twice`, { where });
    seen.add(kind);
    if (kind === '*') routes.defaultQueue = queue;
    else if (isJobKind(kind)) routes.kinds[kind] = queue;
    else throw new QueueError('UNKNOWN_JOB_KIND', `no job kind "${kind}" to route (known: ${JOB_KINDS.join(', ')}, or * for the rest)`, { where });
  }
  return routes;
}

/** The queue a job kind goes to. */
export function queueForKind(routes: JobRoutes, kind: JobKind): string {
  return routes.kinds[kind] ?? routes.defaultQueue;
}

/** Every queue some kind is routed to (the default first), each once. */
export function routedQueues(routes: JobRoutes): string[] {
  return [...new Set([routes.defaultQueue, ...Object.values(routes.kinds).filter((q): q is string => !!q)])];
}

/** Parses `a,b,c` (SCALEOT_QUEUE_NAMES): the queues one worker consumes. Empty = `[fallbackQueue]`. */
export function parseQueueNames(spec: string | undefined, fallbackQueue: string = DEFAULT_QUEUE_NAME, where = 'SCALEOT_QUEUE_NAMES'): string[] {
  const names = (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return [checkQueueName(fallbackQueue, where)];
  for (const name of names) checkQueueName(name, where);
  if (new Set(names).size !== names.length) throw new QueueError('INVALID_OPTIONS', `queue names repeat: ${names.join(',')}`, { where });
  return names;
}
