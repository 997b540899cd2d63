/**
 * At most `limit` tasks at once, the rest wait in arrival order. A worker consuming several queues has
 * one BullMQ worker per queue; this keeps the whole process at SCALEOT_WORKER_CONCURRENCY jobs (one
 * tfjs engine, one wasm heap) however many queues it serves.
 */
export class ConcurrencyGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
