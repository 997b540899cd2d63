import type * as zmq from 'zeromq';

/**
 * Serialises sends on one socket: zeromq.js allows a single send in flight per socket, while the
 * patterns answer many peers concurrently.
 */
export class SerialSender {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly socket: zmq.Writable) {}

  send(frames: zmq.MessageLike[]): Promise<void> {
    const next = this.tail.then(() => this.socket.send(frames));
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Resolves once every send queued so far has been handed to libzmq. */
  async drain(): Promise<void> {
    await this.tail;
  }
}
