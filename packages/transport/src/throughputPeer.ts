import * as zmq from 'zeromq';
import { ResultCollector } from './ResultCollector.js';
import { decodeTensorSet } from './tensorCodec.js';

/** Which path `measureThroughput` exercises. */
export type ThroughputPattern = 'push-pull' | 'result';

export interface ReceiverPlan {
  pattern: ThroughputPattern;
  /** Messages to receive before reporting, warm-up included. */
  messages: number;
  /** Leading messages left out of the CPU accounting. */
  warmup: number;
  verifyChecksums: boolean;
  maxMessageBytes: number;
}

export interface ReceiverReport {
  bytes: number;
  /** CPU seconds of this process (all threads, libzmq's I/O thread included) after the warm-up. */
  cpuSeconds: number;
}

export interface ReceiverHandle {
  address: string;
  /** Resolves once `messages` arrived. */
  done: Promise<ReceiverReport>;
  close(): Promise<void>;
}

export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** The receiving end of a throughput run: a PULL socket decoding every message, or a ResultCollector. */
export async function startReceiver(plan: ReceiverPlan): Promise<ReceiverHandle> {
  if (plan.pattern === 'push-pull') {
    const pull = new zmq.Pull({ maxMessageSize: plan.maxMessageBytes, linger: 0 });
    await pull.bind('tcp://127.0.0.1:*');
    const done = (async () => {
      let bytes = 0;
      let cpu = process.cpuUsage();
      for (let i = 0; i < plan.messages; i++) {
        const frames = await pull.receive();
        if (i === plan.warmup) cpu = process.cpuUsage();
        bytes += decodeTensorSet(frames, { verifyChecksums: plan.verifyChecksums, maxMessageBytes: plan.maxMessageBytes }).byteLength;
      }
      return { bytes, cpuSeconds: cpuSecondsSince(cpu) };
    })();
    return { address: pull.lastEndpoint!, done, close: async () => pull.close() };
  }
  const collector = await ResultCollector.open({ verifyChecksums: plan.verifyChecksums, maxMessageBytes: plan.maxMessageBytes });
  const done = (async () => {
    let bytes = 0;
    let cpu = process.cpuUsage();
    for (let i = 0; i < plan.messages; i++) {
      if (i === plan.warmup) cpu = process.cpuUsage();
      const { results } = await collector.collect([{ runId: 'throughput', round: 0, jobId: String(i) }]);
      for (const result of results.values()) bytes += result.tensors.byteLength;
    }
    return { bytes, cpuSeconds: cpuSecondsSince(cpu) };
  })();
  return { address: collector.address, done, close: () => collector.close() };
}
