import type * as zmq from 'zeromq';
import { createLogger, type Logger } from '@scaleot/core';
import { curveServerReady, releaseCurveServer, type CurveServerOptions } from './curve.js';
import { decodeEnvelope, encodeEnvelope, resultKeyString, type Envelope, type ResultKey } from './envelope.js';
import { SerialSender } from './SerialSender.js';
import { bindableAddress, routerServer, resolvedMaxMessageBytes, type SocketOptions } from './SocketOptions.js';
import { decodeTensorSet } from './tensorCodec.js';
import type { JsonValue } from './Tensor.js';
import type { TensorSet } from './TensorSet.js';
import { TransportError } from './TransportError.js';

export interface ResultCollectorOptions extends SocketOptions {
  /** Where to bind. `:0` or `:*` picks a free port; read it back from `address`. Default `tcp://127.0.0.1:0`. */
  bind?: string;
  /** Encrypt and require senders to know the server key. Default: plain TCP. */
  curve?: CurveServerOptions;
  /** Verify chunk checksums. Default true. */
  verifyChecksums?: boolean;
  /** Logger. Default `createLogger('transport.collector')`. */
  logger?: Logger;
  /**
   * Delivered keys remembered for de-duplication after they were collected. The oldest are forgotten
   * first, so memory stays bounded over a long run; a duplicate of a forgotten key arrives long after its
   * round ended and is discarded by its round. Default 100000.
   */
  maxRememberedKeys?: number;
}

export interface ReceivedResult {
  key: ResultKey;
  tensors: TensorSet;
  meta?: JsonValue;
  /** Deliveries of this key seen so far (>1 when a retried job sent it again; only the first is kept). */
  deliveries: number;
}

export interface CollectOptions {
  /** Give up waiting after this many ms. Default: wait forever. */
  timeoutMs?: number;
  /** On timeout, return what arrived (and list the rest in `missing`) instead of throwing TIMEOUT. Default false. */
  allowPartial?: boolean;
}

export interface CollectResult {
  /** Arrived results, keyed by `resultKeyString(key)`, in the order of the expected keys. */
  results: Map<string, ReceivedResult>;
  missing: ResultKey[];
}

/**
 * Coordinator end of result delivery (ROUTER). Workers' {@link ResultSender}s push tensor sets keyed by
 * {runId, round, jobId}; each delivery is decoded and checksum-verified, then acknowledged (or refused with
 * the reason, so the sender can resend). Repeated deliveries of a key are acknowledged as duplicates and
 * dropped, also after the key was collected. Results that arrive before `collect` asks are kept until then.
 */
export class ResultCollector {
  private readonly socket: zmq.Router;
  private readonly sender: SerialSender;
  private readonly log: Logger;
  private readonly pending = new Map<string, ReceivedResult>();
  private readonly deliveries = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private loop?: Promise<void>;
  private closed = false;
  private boundAddress = '';

  private constructor(private readonly options: ResultCollectorOptions) {
    this.socket = routerServer(options);
    this.sender = new SerialSender(this.socket);
    this.log = options.logger ?? createLogger('transport.collector');
  }

  /** Binds and starts receiving. */
  static async open(options: ResultCollectorOptions = {}): Promise<ResultCollector> {
    const collector = new ResultCollector(options);
    await curveServerReady();
    await collector.socket.bind(bindableAddress(options.bind ?? 'tcp://127.0.0.1:0'));
    collector.boundAddress = collector.socket.lastEndpoint ?? '';
    collector.loop = collector.receiveLoop();
    return collector;
  }

  /** The bound endpoint, e.g. `tcp://127.0.0.1:41235` (what a job's `resultAddress` should carry). */
  get address(): string {
    return this.boundAddress;
  }

  /** Whether a result for `key` has been received (collected or not). */
  hasReceived(key: ResultKey): boolean {
    return this.deliveries.has(resultKeyString(key));
  }

  /** Removes and returns an arrived, not yet collected result. */
  take(key: ResultKey): ReceivedResult | undefined {
    const id = resultKeyString(key);
    const result = this.pending.get(id);
    this.pending.delete(id);
    return result;
  }

  /** Drops uncollected results whose key matches (e.g. stale rounds after a restart); returns how many. */
  discard(predicate: (key: ResultKey) => boolean): number {
    let dropped = 0;
    for (const [id, result] of this.pending) {
      if (predicate(result.key)) {
        this.pending.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Waits until every key in `expected` has arrived, then removes and returns them. On timeout throws
   * TIMEOUT listing the missing keys, or with `allowPartial` returns what arrived (those are removed too).
   */
  async collect(expected: readonly ResultKey[], options: CollectOptions = {}): Promise<CollectResult> {
    const ids = expected.map(resultKeyString);
    const arrived = () => ids.every((id) => this.pending.has(id));
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    while (!arrived() && !this.closed) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      await this.nextArrival(remaining);
    }
    const missing = expected.filter((_, i) => !this.pending.has(ids[i]));
    if (missing.length > 0 && !options.allowPartial) {
      const list = missing.slice(0, 5).map((k) => `${k.runId}/${k.round}/${k.jobId}`).join(', ');
      const why = this.closed ? 'the collector was closed' : `${options.timeoutMs} ms passed`;
      throw new TransportError(
        this.closed ? 'CLOSED' : 'TIMEOUT',
        `${missing.length} of ${expected.length} results missing after ${why}: ${list}${missing.length > 5 ? ', ...' : ''} (pass allowPartial to take the ones that arrived)`,
      );
    }
    const results = new Map<string, ReceivedResult>();
    for (const id of ids) {
      const result = this.pending.get(id);
      if (result) results.set(id, result);
      this.pending.delete(id);
    }
    return { results, missing };
  }

  private nextArrival(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = Number.isFinite(timeoutMs) ? setTimeout(wake, timeoutMs) : undefined;
      this.waiters.add(wake);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
    await this.sender.drain();
    this.socket.close();
    releaseCurveServer(this.socket);
    await this.loop?.catch(() => undefined);
  }

  private async receiveLoop(): Promise<void> {
    const maxMessageBytes = resolvedMaxMessageBytes(this.options);
    while (!this.closed) {
      let message: Buffer[];
      try {
        message = await this.socket.receive();
      } catch (error) {
        if (this.closed) return;
        this.log.error({ err: error }, 'receive failed');
        continue;
      }
      const [identity, envelopeFrame, ...frames] = message;
      let envelope: Envelope;
      try {
        envelope = decodeEnvelope(envelopeFrame);
        if (envelope.type !== 'result') throw new TransportError('BAD_FRAME', `a collector accepts "result" messages, not "${envelope.type}"`);
      } catch (error) {
        this.log.warn({ err: error }, 'dropped a message with a bad envelope');
        continue;
      }
      const reply = this.accept(envelope, frames, maxMessageBytes);
      // Queued in the same tick as the result became visible, so close() (which drains) cannot drop it.
      const answered = this.sender.send([identity, encodeEnvelope(reply)]);
      if (reply.type === 'ack' && !reply.duplicate) for (const wake of [...this.waiters]) wake();
      await answered.catch((error: unknown) => {
        // EHOSTUNREACH: the sender went away; it will resend after reconnecting if it still cares.
        this.log.warn({ err: error, id: envelope.id }, 'could not answer a sender');
      });
    }
  }

  /** Keys remembered for de-duplication (bounded by `maxRememberedKeys`). */
  get rememberedKeys(): number {
    return this.deliveries.size;
  }

  private forgetOldest(): void {
    const max = this.options.maxRememberedKeys ?? 100_000;
    if (this.deliveries.size <= max) return;
    for (const key of this.deliveries.keys()) {
      if (this.deliveries.size <= max) break;
      // A result not collected yet is still needed; only collected keys are forgotten.
      if (!this.pending.has(key)) this.deliveries.delete(key);
    }
  }

  private accept(envelope: Extract<Envelope, { type: 'result' }>, frames: Buffer[], maxMessageBytes: number): Envelope {
    const id = resultKeyString(envelope.key);
    const seen = this.deliveries.get(id) ?? 0;
    try {
      if (seen > 0) {
        this.deliveries.set(id, seen + 1);
        const kept = this.pending.get(id);
        if (kept) kept.deliveries = seen + 1;
        return { v: 1, type: 'ack', id: envelope.id, attempt: envelope.attempt, duplicate: true };
      }
      const tensors = decodeTensorSet(frames, { maxMessageBytes, verifyChecksums: this.options.verifyChecksums ?? true });
      this.deliveries.set(id, 1);
      const result: ReceivedResult = { key: envelope.key, tensors, deliveries: 1 };
      if (envelope.meta !== undefined) result.meta = envelope.meta;
      this.pending.set(id, result);
      this.forgetOldest();
      return { v: 1, type: 'ack', id: envelope.id, attempt: envelope.attempt, duplicate: false };
    } catch (error) {
      const code = error instanceof TransportError ? error.code : 'BAD_FRAME';
      const message = error instanceof Error ? error.message : String(error);
      this.log.warn({ code, key: envelope.key, attempt: envelope.attempt }, `refused a result: ${message}`);
      return { v: 1, type: 'nack', id: envelope.id, attempt: envelope.attempt, code, message };
    }
  }
}
