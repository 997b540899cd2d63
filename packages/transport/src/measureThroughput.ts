import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { ResultSender } from './ResultSender.js';
import { createTensor } from './Tensor.js';
import { TensorSet } from './TensorSet.js';
import { encodeTensorSet, DEFAULT_CHUNK_BYTES } from './tensorCodec.js';
import { cpuSecondsSince, startReceiver, type ReceiverPlan, type ReceiverReport, type ThroughputPattern } from './throughputPeer.js';
import { TransportError } from './TransportError.js';

export type { ThroughputPattern };

export interface ThroughputOptions {
  /** Bytes of the Float32Array sent per message. Default 16 MiB. */
  bytes?: number;
  /** Timed messages. Default 20. */
  iterations?: number;
  /** Untimed messages sent first (connection set-up, page faults). Default 2. */
  warmup?: number;
  /** `push-pull`: one-way stream. `result`: ResultSender -> ResultCollector, each send awaiting its ack. Default `push-pull`. */
  pattern?: ThroughputPattern;
  /** Checksum on encode and verify on receipt. Default true. */
  checksum?: boolean;
  /** Payload bytes per frame. Default {@link DEFAULT_CHUNK_BYTES}. */
  chunkBytes?: number;
  /** `process`: the receiver runs in a child process (like a real coordinator). `inline`: same thread. Default `process`. */
  receiver?: 'process' | 'inline';
}

export interface ThroughputResult {
  pattern: ThroughputPattern;
  bytes: number;
  iterations: number;
  checksum: boolean;
  chunkBytes: number;
  seconds: number;
  /** Payload bytes per second / 1e9, over loopback TCP, encode and decode included. */
  gbPerSecond: number;
  /** CPU seconds of the sending process over the timed part (all threads; includes the receiver when inline). */
  senderCpuSeconds: number;
  /** CPU seconds of the receiving child process over the timed part; undefined when inline. */
  receiverCpuSeconds?: number;
  /**
   * Payload GB per CPU-second of the busier process: the rate the path could reach with a core per
   * process. Unlike `gbPerSecond` it barely moves when other work shares the machine. Process mode only.
   */
  cpuBoundGbPerSecond?: number;
}

/** Loopback throughput of a tensor message path (used by `npm run bench -- cluster`). */
export async function measureThroughput(options: ThroughputOptions = {}): Promise<ThroughputResult> {
  const bytes = options.bytes ?? 16 * 1024 * 1024;
  const iterations = options.iterations ?? 20;
  const warmup = options.warmup ?? 2;
  const pattern = options.pattern ?? 'push-pull';
  const checksum = options.checksum ?? true;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const data = new Float32Array(Math.floor(bytes / 4));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
  const set = new TensorSet().set('w', createTensor(data));
  const plan: ReceiverPlan = { pattern, messages: warmup + iterations, warmup, verifyChecksums: checksum, maxMessageBytes: Math.max(1024 * 1024 * 1024, 2 * bytes) };
  const receiver = options.receiver === 'inline' ? await inlineReceiver(plan) : await childReceiver(plan);

  let start = 0n;
  let cpuStart = process.cpuUsage();
  let report: ReceiverReport;
  try {
    if (pattern === 'push-pull') {
      const push = new zmq.Push({ linger: 0 });
      push.connect(receiver.address);
      try {
        for (let i = 0; i < warmup + iterations; i++) {
          if (i === warmup) [start, cpuStart] = [process.hrtime.bigint(), process.cpuUsage()];
          await push.send(encodeTensorSet(set, { chunkBytes, checksum }));
        }
        report = await receiver.done;
      } finally {
        push.close();
      }
    } else {
      const sender = new ResultSender({ address: receiver.address, encode: { chunkBytes, checksum }, ackTimeoutMs: 60_000 });
      try {
        for (let i = 0; i < warmup + iterations; i++) {
          if (i === warmup) [start, cpuStart] = [process.hrtime.bigint(), process.cpuUsage()];
          await sender.send({ runId: 'throughput', round: 0, jobId: String(i) }, set);
        }
        report = await receiver.done;
      } finally {
        await sender.close();
      }
    }
  } finally {
    await receiver.close();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const senderCpuSeconds = cpuSecondsSince(cpuStart);
  const payload = data.byteLength * iterations;
  const result: ThroughputResult = { pattern, bytes: data.byteLength, iterations, checksum, chunkBytes, seconds, gbPerSecond: payload / seconds / 1e9, senderCpuSeconds };
  if (options.receiver !== 'inline') {
    result.receiverCpuSeconds = report.cpuSeconds;
    result.cpuBoundGbPerSecond = payload / Math.max(senderCpuSeconds, report.cpuSeconds) / 1e9;
  }
  return result;
}

interface RunningReceiver {
  address: string;
  done: Promise<ReceiverReport>;
  close(): Promise<void>;
}

async function inlineReceiver(plan: ReceiverPlan): Promise<RunningReceiver> {
  return startReceiver(plan);
}

async function childReceiver(plan: ReceiverPlan): Promise<RunningReceiver> {
  const child = fork(fileURLToPath(new URL('./throughputReceiver.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  type ChildMessage = { address?: string; bytes?: number; cpuSeconds?: number; error?: string };
  const messages: ChildMessage[] = [];
  let notify: (() => void) | undefined;
  child.on('message', (message: ChildMessage) => {
    messages.push(message);
    notify?.();
  });
  const exited = once(child, 'exit');
  const next = async () => {
    while (messages.length === 0) {
      if (child.exitCode !== null) throw new TransportError('CLOSED', `throughput receiver exited with code ${child.exitCode}`);
      await Promise.race([new Promise<void>((resolve) => (notify = resolve)), exited]);
    }
    const message = messages.shift()!;
    if (message.error) throw new TransportError('CLOSED', `throughput receiver failed: ${message.error}`);
    return message;
  };
  child.send(plan);
  const { address } = await next();
  const done = next().then((m) => ({ bytes: m.bytes ?? 0, cpuSeconds: m.cpuSeconds ?? 0 }));
  done.catch(() => undefined); // observed by the caller; this only keeps an early failure from being "unhandled"
  return {
    address: address!,
    done,
    close: async () => {
      if (child.exitCode === null) {
        child.kill();
        await exited;
      }
    },
  };
}
