import { randomUUID } from 'node:crypto';
import type * as zmq from 'zeromq';
import { createLogger, type Logger } from '@scaleot/core';
import type { CurveClientOptions } from './curve.js';
import { decodeEnvelope, encodeEnvelope, type Envelope, type ResultKey } from './envelope.js';
import { SerialSender } from './SerialSender.js';
import { dealerClient, type SocketOptions } from './SocketOptions.js';
import { encodeTensorSet, framesByteLength, type EncodeOptions } from './tensorCodec.js';
import type { JsonValue } from './Tensor.js';
import type { TensorSet } from './TensorSet.js';
import { TransportError, type TransportErrorCode } from './TransportError.js';

export interface ResultSenderOptions extends SocketOptions {
  /** The collector's address (a job's `resultAddress`). */
  address: string;
  /** Needed when the collector uses CURVE. */
  curve?: CurveClientOptions;
  /** How long one attempt waits for the collector's acknowledgement, ms. Default 30000. */
  ackTimeoutMs?: number;
  /** Attempts per `send`, the first included; retried on CHECKSUM_MISMATCH and TIMEOUT only. Default 3. */
  attempts?: number;
  /** Chunking and checksums. Defaults of {@link encodeTensorSet}. */
  encode?: EncodeOptions;
  /**
   * Test hook: rewrites the frames of each attempt (numbered from 1) just before sending. Payload frames
   * are views of the caller's arrays: copy a frame before changing it.
   */
  beforeSend?: (frames: Buffer[], attempt: number) => Buffer[];
  /** Logger. Default `createLogger('transport.sender')`. */
  logger?: Logger;
}

export interface SendReceipt {
  /** Attempts it took (1 when the first was acknowledged). */
  attempts: number;
  /** The collector already had this key (an earlier run of the same job delivered it). */
  duplicate: boolean;
  /** Bytes sent per attempt, headers included. */
  bytes: number;
}

interface Waiter {
  attempt: number;
  settle: (reply: Envelope | TransportError) => void;
}

/**
 * Worker end of result delivery (DEALER): sends a tensor set under its {runId, round, jobId} and resolves
 * once the {@link ResultCollector} acknowledged it, resending when the collector reports a checksum
 * mismatch or does not answer in time. Several sends may be in flight at once.
 */
export class ResultSender {
  private readonly socket: zmq.Dealer;
  private readonly sender: SerialSender;
  private readonly log: Logger;
  private readonly waiters = new Map<string, Waiter>();
  private readonly loop: Promise<void>;
  private closed = false;

  constructor(private readonly options: ResultSenderOptions) {
    this.socket = dealerClient(options);
    this.sender = new SerialSender(this.socket);
    this.log = options.logger ?? createLogger('transport.sender');
    this.loop = this.receiveLoop();
  }

  /** Delivers `tensors` under `key`; throws TransportError when all attempts failed or the collector refused. */
  async send(key: ResultKey, tensors: TensorSet, meta?: JsonValue): Promise<SendReceipt> {
    const attempts = this.options.attempts ?? 3;
    const ackTimeoutMs = this.options.ackTimeoutMs ?? 30_000;
    const frames = encodeTensorSet(tensors, this.options.encode);
    const bytes = framesByteLength(frames);
    const limit = this.options.maxMessageBytes;
    if (limit !== undefined && bytes > limit) {
      throw new TransportError('MESSAGE_TOO_LARGE', `result of ${bytes} bytes exceeds maxMessageBytes ${limit}`);
    }
    const id = randomUUID();
    let lastError: TransportError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (this.closed) throw new TransportError('CLOSED', 'the sender was closed');
      const envelope: Envelope = { v: 1, type: 'result', id, attempt, key };
      if (meta !== undefined) envelope.meta = meta;
      const outgoing = this.options.beforeSend ? this.options.beforeSend(frames, attempt) : frames;
      const reply = await this.exchange(id, attempt, [encodeEnvelope(envelope), ...outgoing], ackTimeoutMs);
      if (reply instanceof TransportError) {
        lastError = reply;
      } else if (reply.type === 'ack') {
        return { attempts: attempt, duplicate: reply.duplicate, bytes };
      } else if (reply.type === 'nack') {
        lastError = new TransportError(reply.code as TransportErrorCode, `collector refused the result: ${reply.message}`, { where: `${key.runId}/${key.round}/${key.jobId}` });
      } else {
        lastError = new TransportError('BAD_FRAME', `unexpected "${reply.type}" answer from the collector`);
      }
      if (!lastError.retryable) throw lastError;
      this.log.warn({ key, attempt, code: lastError.code }, 'result not delivered, resending');
    }
    throw lastError ?? new TransportError('TIMEOUT', 'no attempt made');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    for (const waiter of this.waiters.values()) waiter.settle(new TransportError('CLOSED', 'the sender was closed while waiting for an acknowledgement'));
    this.waiters.clear();
    await this.loop.catch(() => undefined);
  }

  private exchange(id: string, attempt: number, message: Buffer[], timeoutMs: number): Promise<Envelope | TransportError> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(new TransportError('TIMEOUT', `no acknowledgement from ${this.options.address} within ${timeoutMs} ms`)), timeoutMs);
      const settle = (reply: Envelope | TransportError) => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(reply);
      };
      this.waiters.set(id, { attempt, settle });
      this.sender.send(message).catch((error: unknown) => settle(new TransportError('CLOSED', 'send failed', { cause: error })));
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
      let reply: Envelope;
      try {
        reply = decodeEnvelope(frames[0]);
      } catch (error) {
        this.log.warn({ err: error }, 'dropped an unreadable answer');
        continue;
      }
      const waiter = this.waiters.get(reply.id);
      if (!waiter) continue;
      // A late ack of an earlier attempt still means delivered; a late refusal of one is stale.
      if (reply.type === 'ack' || !('attempt' in reply) || reply.attempt === waiter.attempt) waiter.settle(reply);
    }
  }
}
