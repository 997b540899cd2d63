export interface ApiRateLimiterOptions {
  /** Requests a key may make in a burst. Default 60. */
  burst?: number;
  /** Sustained requests per second per key. Default 20. */
  perSecond?: number;
  /** Keys remembered at most (least recently used forgotten first, so memory stays bounded). Default 10000. */
  maxKeys?: number;
  /** Clock (tests). Default Date.now. */
  now?: () => number;
}

/**
 * A token bucket per key (tenant, or client address before authentication) for the HTTP API: `take`
 * says whether a request may go ahead and, if not, after how many seconds (the `Retry-After` header).
 */
export class ApiRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;
  private readonly perSecond: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: ApiRateLimiterOptions = {}) {
    this.burst = options.burst ?? 60;
    this.perSecond = options.perSecond ?? 20;
    this.maxKeys = options.maxKeys ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** 0 when the request may go ahead (and it is counted), else the whole seconds to wait. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    this.buckets.delete(key);
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond));
  }

  get size(): number {
    return this.buckets.size;
  }
}
