import { randomUUID } from 'node:crypto';
import type * as zmq from 'zeromq';
import { createLogger, type Logger } from '@scaleot/core';
import type { CurveClientOptions } from './curve.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from './envelope.js';
import { SerialSender } from './SerialSender.js';
import { dealerClient, resolvedMaxMessageBytes, type SocketOptions } from './SocketOptions.js';
import { decodeTensorSet } from './tensorCodec.js';
import type { JsonValue } from './Tensor.js';
import type { TensorSet } from './TensorSet.js';
import { TransportError } from './TransportError.js';

export interface ParameterSubscriberOptions extends SocketOptions {
  /** The publisher's address. */
  address: string;
  /** Needed when the publisher uses CURVE. */
  curve?: CurveClientOptions;
  /** How long one request may be parked at the publisher, ms (bounded by its `maxWaitMs`). Default 10000. */
  pollMs?: number;
  /** Extra time on top of `pollMs` before a request counts as lost and is sent again, ms. Default 10000. */
  replyGraceMs?: number;
  /** Verify chunk checksums (a mismatch asks again). Default true. */
  verifyChecksums?: boolean;
  /** Logger. Default `createLogger('transport.subscriber')`. */
  logger?: Logger;
}

export interface ParameterSnapshot {
  version: number;
  tensors: TensorSet;
  meta?: JsonValue;
}

export interface FetchOptions {
  /** Give up after this many ms with TIMEOUT. Default 300000. */
  timeoutMs?: number;
}

/**
 * Worker end of parameter distribution (DEALER): `fetch(r)` returns the publisher's latest version once it
 * is >= r, asking again after lost answers, publisher restarts and checksum failures. The last snapshot
 * is cached, so asking again for a version already held costs nothing.
 */
export class ParameterSubscriber {
  private readonly socket: zmq.Dealer;
  private readonly sender: SerialSender;
  private readonly log: Logger;
  private readonly waiters = new Map<string, (frames: Buffer[] | TransportError) => void>();
  private readonly loop: Promise<void>;
  private snapshot?: ParameterSnapshot;
  private closed = false;

  constructor(private readonly options: ParameterSubscriberOptions) {
    this.socket = dealerClient(options);
    this.sender = new SerialSender(this.socket);
    this.log = options.logger ?? createLogger('transport.subscriber');
    this.loop = this.receiveLoop();
  }

  /** The last snapshot fetched, if any. */
  get current(): ParameterSnapshot | undefined {
    return this.snapshot;
  }

  /** The latest published version, once it is >= `minVersion`. */
  async fetch(minVersion: number, options: FetchOptions = {}): Promise<ParameterSnapshot> {
    if (this.snapshot && this.snapshot.version >= minVersion) return this.snapshot;
    const timeoutMs = options.timeoutMs ?? 300_000;
    const pollMs = this.options.pollMs ?? 10_000;
    const graceMs = this.options.replyGraceMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let latestSeen: number | null = null;
    let lastProblem = 'no answer';
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new TransportError(
          'TIMEOUT',
          `no parameters with version >= ${minVersion} from ${this.options.address} within ${timeoutMs} ms (latest seen: ${latestSeen ?? 'none'}; last: ${lastProblem})`,
        );
      }
      const waitMs = Math.min(pollMs, remaining);
      const frames = await this.request(minVersion, waitMs, Math.min(remaining, waitMs + graceMs));
      if (frames instanceof TransportError) {
        if (!frames.retryable || this.closed) throw frames;
        lastProblem = frames.message;
        continue;
      }
      let reply: Envelope;
      try {
        reply = decodeEnvelope(frames[0]);
        if (reply.type === 'notyet') {
          latestSeen = reply.latestVersion;
          lastProblem = `publisher has version ${reply.latestVersion ?? 'none'}`;
          continue;
        }
        if (reply.type === 'error') throw new TransportError('REJECTED', `publisher refused the request: ${reply.message}`);
        if (reply.type !== 'params') throw new TransportError('BAD_FRAME', `unexpected "${reply.type}" answer from the publisher`);
        const tensors = decodeTensorSet(frames.slice(1), {
          maxMessageBytes: resolvedMaxMessageBytes(this.options),
          verifyChecksums: this.options.verifyChecksums ?? true,
        });
        const snapshot: ParameterSnapshot = { version: reply.version, tensors };
        if (reply.meta !== undefined) snapshot.meta = reply.meta;
        this.snapshot = snapshot;
        return snapshot;
      } catch (error) {
        if (error instanceof TransportError && error.retryable) {
          this.log.warn({ code: error.code, minVersion }, 'parameters arrived damaged, asking again');
          lastProblem = error.message;
          continue;
        }
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    for (const settle of [...this.waiters.values()]) settle(new TransportError('CLOSED', 'the subscriber was closed while waiting'));
    await this.loop.catch(() => undefined);
  }

  private request(minVersion: number, waitMs: number, timeoutMs: number): Promise<Buffer[] | TransportError> {
    if (this.closed) return Promise.resolve(new TransportError('CLOSED', 'the subscriber is closed'));
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(new TransportError('TIMEOUT', `no answer from ${this.options.address} within ${timeoutMs} ms`)), timeoutMs);
      const settle = (frames: Buffer[] | TransportError) => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(frames);
      };
      this.waiters.set(id, settle);
      const get: Envelope = { v: 1, type: 'get', id, minVersion, waitMs };
      this.sender.send([encodeEnvelope(get)]).catch((error: unknown) => settle(new TransportError('CLOSED', 'send failed', { cause: error })));
    });
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (error) {
        if (this.closed) return;
        this.log.error({ err: error }, 'receive failed');
        continue;
      }
      // Only the envelope's id is needed to route the answer; full parsing happens in fetch.
      let id: string | undefined;
      try {
        id = decodeEnvelope(frames[0]).id;
      } catch {
        continue;
      }
      this.waiters.get(id)?.(frames);
    }
  }
}
