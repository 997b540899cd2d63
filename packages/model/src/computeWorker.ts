// A compute thread (worker_threads entry point, loaded from dist by ComputeExecutor): selects the tfjs
// backend once, then runs task functions one at a time, so the owning process' event loop stays free.
import { parentPort, workerData } from 'node:worker_threads';
import { ScaleotError } from '@scaleot/core';
import type { ComputeReply, ComputeRequest, ComputeTaskFunction, ComputeThreadInit, SerializedError } from './computeProtocol.js';
import { useBackend } from './useBackend.js';

const port = parentPort!;
const init = workerData as ComputeThreadInit;

function serialize(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    name: e.name,
    message: e.message,
    code: e instanceof ScaleotError ? e.code : (e as { code?: unknown }).code === undefined ? undefined : String((e as { code?: unknown }).code),
    unrecoverable: e instanceof ScaleotError ? e.unrecoverable : undefined,
    stack: e.stack,
  };
}

/** The typed-array buffers of a result: moved to the caller instead of copied. */
function transfers(value: unknown, out = new Set<ArrayBuffer>(), depth = 0): Set<ArrayBuffer> {
  if (depth > 6 || value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) out.add(value.buffer);
    return out;
  }
  if (value instanceof Map) for (const v of value.values()) transfers(v, out, depth + 1);
  else if (Array.isArray(value)) for (const v of value) transfers(v, out, depth + 1);
  else for (const v of Object.values(value)) transfers(v, out, depth + 1);
  return out;
}

function post(reply: ComputeReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(reply, transfer);
}

async function main(): Promise<void> {
  await useBackend(init.backend);
  let tail: Promise<void> = Promise.resolve();
  port.on('message', (req: ComputeRequest) => {
    tail = tail.then(async () => {
      try {
        const mod = (await import(req.module)) as Record<string, unknown>;
        const fn = mod[req.exportName] as ComputeTaskFunction | undefined;
        if (typeof fn !== 'function') throw new ScaleotError('NO_COMPUTE_TASK', `${req.module} exports no function "${req.exportName}"`, { where: 'compute thread' });
        const value = await fn(req.args, { progress: (v) => post({ type: 'progress', id: req.id, value: v }) });
        try {
          post({ type: 'result', id: req.id, value }, [...transfers(value)]);
        } catch {
          post({ type: 'result', id: req.id, value });
        }
      } catch (err) {
        post({ type: 'error', id: req.id, error: serialize(err) });
      }
    });
  });
  post({ type: 'ready' });
}

main().catch((err) => post({ type: 'error', error: serialize(err) }));
