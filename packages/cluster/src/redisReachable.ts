import { Redis } from 'ioredis';

/** Whether a Redis answers PING at `url` within `timeoutMs` (no retries; never throws). */
export async function redisReachable(url: string, timeoutMs = 1500, password?: string): Promise<{ ok: boolean; reason?: string }> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, enableReadyCheck: false, ...(password ? { password } : {}) });
  // The first error says why (WRONGPASS, NOAUTH, ECONNREFUSED); later ones only say the link closed.
  let first: Error | undefined;
  client.on('error', (error: Error) => (first ??= error));
  try {
    await Promise.race([client.connect().then(() => client.ping()), new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))]);
    return { ok: true };
  } catch (error) {
    const own = error instanceof Error ? error.message : String(error);
    return { ok: false, reason: /NOAUTH|WRONGPASS|invalid password/i.test(own) ? own : (first?.message ?? own) };
  } finally {
    client.disconnect();
  }
}
