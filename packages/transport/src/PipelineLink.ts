import * as zmq from 'zeromq';
import { applySocketOptions, bindableAddress, type SocketOptions } from './SocketOptions.js';
import type { JsonValue } from './Tensor.js';
import { decodeTensorSet, encodeTensorSet, framesByteLength } from './tensorCodec.js';
import { TensorSet } from './TensorSet.js';
import { TransportError } from './TransportError.js';

/**
 * Payload bytes per frame of a pipeline message. Activations of a large model are tens to hundreds of
 * MiB per micro-batch; plain zeromq moves about 2 GB/s on loopback in 1-4 MiB frames and much less in
 * single 64 MiB frames, so activations travel as 2 MiB frames of one multipart message.
 */
export const PIPELINE_CHUNK_BYTES = 2 * 1024 * 1024;

/** One message between pipeline stages: a JSON header (`type` says what) and optional tensors. */
export interface PipelineMessage {
  header: { type: string } & Record<string, JsonValue>;
  tensors: TensorSet;
}

export interface PipelineLinkOptions extends SocketOptions {
  /** Frame payload bytes. Default {@link PIPELINE_CHUNK_BYTES}. */
  chunkBytes?: number;
  /** Checksum each frame. Default true. */
  checksum?: boolean;
  /** Receive timeout, ms (an upstream that died leaves a stage waiting at most this long). Default 600000. */
  receiveTimeoutMs?: number;
}

export function encodePipelineMessage(message: PipelineMessage, options: Pick<PipelineLinkOptions, 'chunkBytes' | 'checksum'> = {}): Buffer[] {
  return [Buffer.from(JSON.stringify(message.header)), ...encodeTensorSet(message.tensors, { chunkBytes: options.chunkBytes ?? PIPELINE_CHUNK_BYTES, checksum: options.checksum ?? true })];
}

export function decodePipelineMessage(frames: readonly Buffer[], maxMessageBytes?: number): PipelineMessage {
  if (frames.length === 0) throw new TransportError('BAD_FRAME', 'an empty pipeline message');
  let header: unknown;
  try {
    header = JSON.parse(frames[0].toString('utf8'));
  } catch (cause) {
    throw new TransportError('BAD_FRAME', 'a pipeline message header is not JSON', { cause });
  }
  if (typeof header !== 'object' || header === null || typeof (header as { type?: unknown }).type !== 'string') {
    throw new TransportError('BAD_FRAME', 'a pipeline message header needs a string "type"');
  }
  return { header: header as PipelineMessage['header'], tensors: frames.length > 1 ? decodeTensorSet(frames.slice(1), { maxMessageBytes }) : new TensorSet() };
}

/**
 * The receiving end of a pipeline hop (ZeroMQ PULL, bound): a stage's input, the coordinator's control
 * and result channel. Messages from one sender arrive in order, each whole.
 */
export class PipelineInbox {
  /** Bytes received (all frames). */
  bytesReceived = 0;
  private constructor(
    private readonly socket: zmq.Pull,
    /** The address peers connect to (the bound port resolved, `advertiseHost` substituted). */
    readonly address: string,
    private readonly options: PipelineLinkOptions,
  ) {}

  /** Binds `tcp://<bindHost>:*` (or the given port) and advertises `advertiseHost` with the bound port. */
  static async bind(bind: string, advertiseHost: string, options: PipelineLinkOptions = {}): Promise<PipelineInbox> {
    const socket = new zmq.Pull();
    applySocketOptions(socket, options, 'bind');
    socket.receiveTimeout = options.receiveTimeoutMs ?? 600_000;
    await socket.bind(bindableAddress(bind));
    const port = /:(\d+)$/.exec(socket.lastEndpoint ?? '')?.[1];
    if (!port) {
      socket.close();
      throw new TransportError('BAD_FRAME', `could not tell the port bound for ${bind} (${socket.lastEndpoint})`);
    }
    return new PipelineInbox(socket, `tcp://${advertiseHost}:${port}`, options);
  }

  /** The next message; TIMEOUT after `receiveTimeoutMs`, CLOSED once closed. */
  async receive(): Promise<PipelineMessage & { bytes: number }> {
    let frames: Buffer[];
    try {
      frames = await this.socket.receive();
    } catch (cause) {
      const code = (cause as { code?: string }).code;
      if (code === 'EAGAIN') throw new TransportError('TIMEOUT', `no pipeline message on ${this.address} within ${this.socket.receiveTimeout} ms`, { cause });
      throw new TransportError('CLOSED', `the pipeline inbox ${this.address} was closed`, { cause });
    }
    const bytes = framesByteLength(frames);
    this.bytesReceived += bytes;
    return { ...decodePipelineMessage(frames, this.options.maxMessageBytes), bytes };
  }

  /** Changes how long `receive` waits from now on (e.g. a short wait for the route, a long one for work). */
  setReceiveTimeout(ms: number): void {
    this.socket.receiveTimeout = ms;
  }

  close(): void {
    this.socket.close();
  }
}

/** The sending end of a pipeline hop (ZeroMQ PUSH, connected to the next stage's inbox). */
export class PipelineOutbox {
  /** Bytes sent (all frames). */
  bytesSent = 0;
  private constructor(
    private readonly socket: zmq.Push,
    readonly address: string,
    private readonly options: PipelineLinkOptions,
  ) {}

  static connect(address: string, options: PipelineLinkOptions = {}): PipelineOutbox {
    const socket = new zmq.Push();
    applySocketOptions(socket, { lingerMs: 10_000, ...options }, 'connect');
    socket.connect(address);
    return new PipelineOutbox(socket, address, options);
  }

  /** Sends one message as chunked frames; resolves once ZeroMQ queued it. Returns the bytes sent. */
  async send(message: PipelineMessage): Promise<number> {
    const frames = encodePipelineMessage(message, this.options);
    await this.socket.send(frames);
    const bytes = framesByteLength(frames);
    this.bytesSent += bytes;
    return bytes;
  }

  close(): void {
    this.socket.close();
  }
}
