import { Redis } from 'ioredis';

/** Whether a Redis answers PING at `url` within `timeoutMs` (no retries; never throws). */
export async function redisReachable(url: string, timeoutMs = 1500, password?: string): Promise<{ ok: boolean; reason?: string }> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, ...(password ? { password } : {}) });
  client.on('error', () => undefined);
  try {
    await Promise.race([client.connect().then(() => client.ping()), new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))]);
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  } finally {
    client.disconnect();
  }
}
