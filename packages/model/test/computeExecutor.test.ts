import { describe, expect, it } from 'vitest';
import { isMainThread, threadId } from 'node:worker_threads';
import { ComputeExecutor, ComputeError } from '@scaleot/model';

const TASKS = new URL('./fixtures/computeTasks.mjs', import.meta.url);

describe('ComputeExecutor', () => {
  it('runs tfjs compute in another thread and moves the result back', async () => {
    const exec = new ComputeExecutor({ backend: 'cpu' });
    try {
      const progress: unknown[] = [];
      const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
      const b = Float32Array.from([1, 0, 0, 1, 1, 1]);
      const r = await exec.run<{ backend: string; data: Float32Array; threadId: number }>({ module: TASKS, exportName: 'matmul', args: { a, b, m: 2, k: 3, n: 2 } }, { onProgress: (v) => progress.push(v) });
      expect(isMainThread).toBe(true);
      expect(r.threadId).not.toBe(threadId);
      expect(r.backend).toBe('cpu');
      expect([...r.data]).toEqual([4, 5, 10, 11]);
      const s = await exec.run<{ threadId: number }>({ module: TASKS, exportName: 'spin', args: { ms: 10 } }, { onProgress: (v) => progress.push(v) });
      expect(s.threadId).toBe(r.threadId); // one thread across tasks: its caches live on
      expect(progress).toEqual([{ started: true, threadId: r.threadId }]);
    } finally {
      await exec.close();
    }
  });

  it("keeps the caller's event loop free while a task computes without yielding", async () => {
    const exec = new ComputeExecutor({ backend: 'cpu' });
    try {
      await exec.run({ module: TASKS, exportName: 'spin', args: { ms: 1 } }); // thread started
      let ticks = 0;
      const timer = setInterval(() => ticks++, 50);
      await exec.run({ module: TASKS, exportName: 'spin', args: { ms: 1500 } });
      clearInterval(timer);
      // Blocked, the loop would run the interval at most once after the spin; free, ~30 times.
      expect(ticks).toBeGreaterThanOrEqual(5);
    } finally {
      await exec.close();
    }
  });

  it('carries a typed error across (code, retry verdict)', async () => {
    const exec = new ComputeExecutor({ backend: 'cpu' });
    try {
      const err = await exec.run({ module: TASKS, exportName: 'fail', args: { code: 'NOPE' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ComputeError);
      expect((err as ComputeError).code).toBe('NOPE');
      expect((err as ComputeError).unrecoverable).toBe(true);
      expect((err as Error).message).toMatch(/fixture: the task refused/);
      const missing = await exec.run({ module: TASKS, exportName: 'absent', args: {} }).catch((e: unknown) => e);
      expect((missing as ComputeError).code).toBe('NO_COMPUTE_TASK');
    } finally {
      await exec.close();
    }
  });

  it('aborting stops a non-yielding task at once (its thread is terminated) and the next task gets a fresh thread', async () => {
    const exec = new ComputeExecutor({ backend: 'cpu' });
    try {
      const first = await exec.run<{ threadId: number }>({ module: TASKS, exportName: 'spin', args: { ms: 1 } });
      const controller = new AbortController();
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const job = exec.run({ module: TASKS, exportName: 'spin', args: { ms: 120_000 } }, { signal: controller.signal, onProgress: () => started() });
      await running;
      const t0 = Date.now();
      controller.abort(new Error('request cancelled'));
      const err = await job.catch((e: unknown) => e);
      const stoppedMs = Date.now() - t0;
      expect((err as { code?: string }).code).toBe('ABORTED');
      expect((err as Error).message).toMatch(/request cancelled/);
      expect(stoppedMs).toBeLessThan(5000);
      const after = await exec.run<{ threadId: number }>({ module: TASKS, exportName: 'spin', args: { ms: 1 } });
      expect(after.threadId).not.toBe(first.threadId);
      // An already-aborted signal never starts the task.
      const pre = await exec.run({ module: TASKS, exportName: 'spin', args: { ms: 1 } }, { signal: AbortSignal.abort('gone') }).catch((e: unknown) => e);
      expect((pre as { code?: string }).code).toBe('ABORTED');
    } finally {
      await exec.close();
    }
  });

  it('runs `concurrency` tasks at once on their own threads, the rest in order, and splits the core budget', async () => {
    const exec = new ComputeExecutor({ backend: 'cpu', concurrency: 2, threadBudget: 4 });
    try {
      expect(exec.threadBudget).toBe(2);
      const started: number[] = [];
      const run = (ms: number) => exec.run<{ threadId: number }>({ module: TASKS, exportName: 'spin', args: { ms } }, { onProgress: (v) => started.push((v as { threadId: number }).threadId) });
      const [a, b, c] = await Promise.all([run(800), run(800), run(1)]);
      expect(a.threadId).not.toBe(b.threadId); // the first two ran side by side
      expect([a.threadId, b.threadId]).toContain(c.threadId); // the third waited for one of them
      expect(started).toHaveLength(3);
    } finally {
      await exec.close();
    }
    await expect(exec.run({ module: TASKS, exportName: 'spin', args: { ms: 1 } })).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
