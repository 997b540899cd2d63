import { describe, expect, it } from 'vitest';
import { measureThroughput } from '@scaleot/transport';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

// Numbers are for `npm run bench -- cluster`; here only that each path moves every byte.
describe('measureThroughput', () => {
  it.each([
    ['push-pull', 'inline'],
    ['result', 'inline'],
    ['push-pull', 'process'],
    ['result', 'process'],
  ] as const)('%s with the receiver %s', async (pattern, receiver) => {
    const result = await measureThroughput({ bytes: 1024 * 1024, iterations: 3, warmup: 1, pattern, receiver, chunkBytes: 256 * 1024 });
    expect(result).toMatchObject({ pattern, bytes: 1024 * 1024, iterations: 3, checksum: true });
    expect(result.seconds).toBeGreaterThan(0);
    expect(Number.isFinite(result.gbPerSecond)).toBe(true);
    expect(result.senderCpuSeconds).toBeGreaterThan(0);
    if (receiver === 'process') {
      expect(result.receiverCpuSeconds).toBeGreaterThan(0);
      expect(Number.isFinite(result.cpuBoundGbPerSecond)).toBe(true);
    } else {
      expect(result.receiverCpuSeconds).toBeUndefined();
    }
  });
});
