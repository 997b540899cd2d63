import { describe, expect, it } from 'vitest';
import { ResultCollector, ResultSender, TensorSet } from '@scaleot/transport';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

describe('ResultCollector de-duplication memory', () => {
  it('stays bounded over a long run, keeps uncollected results, and still drops recent duplicates', async () => {
    const collector = await ResultCollector.open({ maxRememberedKeys: 10 });
    const sender = new ResultSender({ address: collector.address });
    const grads = new TensorSet().add('g', new Float32Array(8).fill(1));
    try {
      for (let i = 0; i < 60; i++) {
        const key = { runId: 'long', round: i, jobId: 'shard-0' };
        await sender.send(key, grads);
        expect(collector.take(key)).toBeDefined();
      }
      expect(collector.rememberedKeys).toBeLessThanOrEqual(10);
      // A resend of a recent key is still acknowledged as a duplicate and not kept again.
      const recent = { runId: 'long', round: 59, jobId: 'shard-0' };
      await sender.send(recent, grads);
      expect(collector.take(recent)).toBeUndefined();
      // Results not collected yet are never forgotten, whatever the bound.
      const pending = Array.from({ length: 15 }, (_, i) => ({ runId: 'pending', round: i, jobId: 'x' }));
      for (const key of pending) await sender.send(key, grads);
      for (const key of pending) expect(collector.hasReceived(key)).toBe(true);
      const { missing } = await collector.collect(pending, { timeoutMs: 5000 });
      expect(missing).toEqual([]);
    } finally {
      await sender.close();
      await collector.close();
    }
  });
});
