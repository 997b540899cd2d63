import { Socket } from 'node:net';

// The integration tests use the Redis on 127.0.0.1:6379 (docs/engineering.md). Without it they would
// wait on BullMQ's reconnects until their timeouts, silently, leaving spawned workers behind; say so
// once, at once, instead.
function answers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => {
      socket.write('PING\r\n');
      socket.once('data', (data) => done(/^\+PONG|^-NOAUTH/.test(data.toString())));
    });
  });
}

export default async function setup(): Promise<void> {
  if (!(await answers('127.0.0.1', 6379, 2000))) {
    throw new Error('the tests need Redis on 127.0.0.1:6379 and none answers: start it (redis-server --daemonize yes) and run the tests again');
  }
}
