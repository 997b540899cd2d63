import * as zmq from 'zeromq';
import { applyCurveClient, applyCurveServer, type CurveClientOptions, type CurveServerOptions } from './curve.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './tensorCodec.js';

/** Options every pattern socket accepts. */
export interface SocketOptions {
  /**
   * Largest message accepted on receipt, all frames together: beyond it the receiver refuses with
   * MESSAGE_TOO_LARGE (and a ResultSender fails at once instead of retrying). Also set as ZeroMQ's
   * maxMessageSize, which libzmq checks per frame and enforces by dropping the connection, so a single
   * frame over it shows up as TIMEOUT at the sender: keep `chunkBytes` below the peer's limit (the
   * 64 MiB default is far below the 1 GiB default). Senders check their own value before sending. Default 1 GiB.
   */
  maxMessageBytes?: number;
  /**
   * How long `close()` lets queued outgoing messages flush, ms. Default 2000 on the binding side
   * (collector, publisher: their last acknowledgements and answers must reach the peers), 0 on the
   * connecting side (senders and subscribers wait for answers, so nothing of theirs is left to flush).
   */
  lingerMs?: number;
  /** ZMTP heartbeat interval, ms; dead peers are noticed after `heartbeatTimeoutMs`. Default 5000. */
  heartbeatIntervalMs?: number;
  /** Default 15000. */
  heartbeatTimeoutMs?: number;
}

export function resolvedMaxMessageBytes(options: SocketOptions): number {
  return options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
}

export function applySocketOptions(socket: zmq.Socket, options: SocketOptions, side: 'bind' | 'connect'): void {
  socket.maxMessageSize = resolvedMaxMessageBytes(options);
  socket.linger = options.lingerMs ?? (side === 'bind' ? 2000 : 0);
  socket.heartbeatInterval = options.heartbeatIntervalMs ?? 5000;
  socket.heartbeatTimeout = options.heartbeatTimeoutMs ?? 15000;
}

/** ZeroMQ spells "any port" as `*`; accept the more familiar `:0` too. */
export function bindableAddress(address: string): string {
  return address.replace(/:0$/, ':*');
}

/** The coordinator end of a request/answer pattern: a ROUTER with our options and, optionally, CURVE. */
export function routerServer(options: SocketOptions & { curve?: CurveServerOptions }): zmq.Router {
  const socket = new zmq.Router({ mandatory: true, sendTimeout: 10_000 });
  applySocketOptions(socket, options, 'bind');
  if (options.curve) applyCurveServer(socket, options.curve);
  return socket;
}

/** The worker end: a DEALER with our options and, optionally, CURVE, connected to `address`. */
export function dealerClient(options: SocketOptions & { curve?: CurveClientOptions; address: string }): zmq.Dealer {
  const socket = new zmq.Dealer();
  applySocketOptions(socket, options, 'connect');
  if (options.curve) applyCurveClient(socket, options.curve);
  socket.connect(options.address);
  return socket;
}

