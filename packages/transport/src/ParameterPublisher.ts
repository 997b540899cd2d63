import type * as zmq from 'zeromq';
import { createLogger, type Logger } from '@scaleot/core';
import { curveServerReady, releaseCurveServer, type CurveServerOptions } from './curve.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from './envelope.js';
import { SerialSender } from './SerialSender.js';
import { bindableAddress, routerServer, type SocketOptions } from './SocketOptions.js';
import { encodeTensorSet, type EncodeOptions } from './tensorCodec.js';
import type { JsonValue } from './Tensor.js';
import { TensorSet } from './TensorSet.js';
import { TransportError } from './TransportError.js';

export interface ParameterPublisherOptions extends SocketOptions {
  /** Where to bind. `:0` or `:*` picks a free port; read it back from `address`. Default `tcp://127.0.0.1:0`. */
  bind?: string;
  /** Encrypt and require subscribers to know the server key. Default: plain TCP. */
  curve?: CurveServerOptions;
  /** Chunking and checksums of published sets. Defaults of {@link encodeTensorSet}. */
  encode?: EncodeOptions;
  /** Cap on how long a request for a not-yet-published version is parked, ms. Default 60000. */
  maxWaitMs?: number;
  /** Logger. Default `createLogger('transport.publisher')`. */
  logger?: Logger;
}

export interface PublishOptions {
  /** Free-form JSON sent along (e.g. the round's scores summary). */
  meta?: JsonValue;
  /**
   * Copy the arrays before publishing. Default false: the arrays are sent zero-copy to every subscriber
   * until a newer version replaces them, so do not write to them in place meanwhile.
   */
  copy?: boolean;
}

interface Parked {
  identity: Buffer;
  id: string;
  minVersion: number;
  timer: NodeJS.Timeout;
}

/**
 * Serves the latest version of a parameter set (e.g. round r's harmonizer weights and scores) to any
 * number of {@link ParameterSubscriber}s (ROUTER). Subscribers ask for "version >= r"; an older or missing
 * version parks the request until `publish` brings one. Pull-based, so a worker that joins late or
 * reconnects still gets the latest version, which PUB/SUB cannot promise. Only the latest version is
 * kept; it is encoded once and its frames are shared by every answer.
 */
export class ParameterPublisher {
  private readonly socket: zmq.Router;
  private readonly sender: SerialSender;
  private readonly log: Logger;
  private readonly parked = new Set<Parked>();
  private latest?: { version: number; meta?: JsonValue; frames: Buffer[] };
  private loop?: Promise<void>;
  private closed = false;
  private boundAddress = '';

  private constructor(private readonly options: ParameterPublisherOptions) {
    this.socket = routerServer(options);
    this.sender = new SerialSender(this.socket);
    this.log = options.logger ?? createLogger('transport.publisher');
  }

  static async open(options: ParameterPublisherOptions = {}): Promise<ParameterPublisher> {
    const publisher = new ParameterPublisher(options);
    await curveServerReady();
    await publisher.socket.bind(bindableAddress(options.bind ?? 'tcp://127.0.0.1:0'));
    publisher.boundAddress = publisher.socket.lastEndpoint ?? '';
    publisher.loop = publisher.receiveLoop();
    return publisher;
  }

  get address(): string {
    return this.boundAddress;
  }

  /** The version being served; undefined before the first `publish`. */
  get latestVersion(): number | undefined {
    return this.latest?.version;
  }

  /** Makes `version` the one served and answers every parked request it satisfies. Versions must increase. */
  async publish(version: number, tensors: TensorSet, options: PublishOptions = {}): Promise<void> {
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new TransportError('VERSION_CONFLICT', `parameter versions are non-negative integers, got ${version}`);
    }
    if (this.latest && version <= this.latest.version) {
      throw new TransportError('VERSION_CONFLICT', `version ${version} is not newer than the published ${this.latest.version}`);
    }
    const set = options.copy ? copySet(tensors) : tensors;
    this.latest = { version, meta: options.meta, frames: encodeTensorSet(set, this.options.encode) };
    const answers: Promise<void>[] = [];
    for (const request of [...this.parked]) {
      if (request.minVersion <= version) {
        this.unpark(request);
        answers.push(this.answerWithParams(request.identity, request.id));
      }
    }
    await Promise.all(answers);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const request of [...this.parked]) this.unpark(request);
    await this.sender.drain();
    this.socket.close();
    releaseCurveServer(this.socket);
    await this.loop?.catch(() => undefined);
  }

  private unpark(request: Parked): void {
    clearTimeout(request.timer);
    this.parked.delete(request);
  }

  private async answerWithParams(identity: Buffer, id: string): Promise<void> {
    const latest = this.latest!;
    const envelope: Envelope = { v: 1, type: 'params', id, version: latest.version };
    if (latest.meta !== undefined) envelope.meta = latest.meta;
    await this.reply(identity, [encodeEnvelope(envelope), ...latest.frames]);
  }

  private async reply(identity: Buffer, frames: Buffer[]): Promise<void> {
    try {
      await this.sender.send([identity, ...frames]);
    } catch (error) {
      // The subscriber left (EHOSTUNREACH) or is not reading; it asks again when it needs to.
      if (!this.closed) this.log.warn({ err: error }, 'could not answer a subscriber');
    }
  }

  private async receiveLoop(): Promise<void> {
    const maxWaitMs = this.options.maxWaitMs ?? 60_000;
    while (!this.closed) {
      let message: Buffer[];
      try {
        message = await this.socket.receive();
      } catch (error) {
        if (this.closed) return;
        this.log.error({ err: error }, 'receive failed');
        continue;
      }
      const [identity, frame] = message;
      let request: Envelope;
      try {
        request = decodeEnvelope(frame);
      } catch (error) {
        this.log.warn({ err: error }, 'dropped an unreadable request');
        continue;
      }
      if (request.type !== 'get' || !Number.isSafeInteger(request.minVersion)) {
        void this.reply(identity, [encodeEnvelope({ v: 1, type: 'error', id: request.id, code: 'BAD_FRAME', message: 'a publisher answers {type: "get", minVersion}' })]);
        continue;
      }
      if (this.latest && this.latest.version >= request.minVersion) {
        void this.answerWithParams(identity, request.id);
        continue;
      }
      const waitMs = Math.max(0, Math.min(maxWaitMs, Number(request.waitMs) || 0));
      const parked: Parked = {
        identity,
        id: request.id,
        minVersion: request.minVersion,
        timer: setTimeout(() => {
          this.unpark(parked);
          void this.reply(identity, [encodeEnvelope({ v: 1, type: 'notyet', id: parked.id, latestVersion: this.latest?.version ?? null })]);
        }, waitMs),
      };
      this.parked.add(parked);
    }
  }
}

function copySet(set: TensorSet): TensorSet {
  const copy = new TensorSet();
  for (const [name, tensor] of set) copy.set(name, { ...tensor, data: tensor.data.slice() });
  return copy;
}
