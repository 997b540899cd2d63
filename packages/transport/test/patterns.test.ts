import { afterEach, describe, expect, it } from 'vitest';
import {
  ParameterPublisher,
  ParameterSubscriber,
  ResultCollector,
  ResultSender,
  TensorSet,
  TransportError,
  generateCurveKeyPair,
  resultKeyString,
} from '@scaleot/transport';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});
function track<T extends { close(): Promise<void> }>(resource: T): T {
  closers.push(() => resource.close());
  return resource;
}

function gradients(seed: number, length = 4096): TensorSet {
  const w = new Float32Array(length).map((_, i) => Math.cos(i + seed));
  const b = new Float32Array(100).map((_, i) => -Math.cos(i + seed));
  return new TensorSet().add('h0.grad', w).add('h1.grad', b, [10, 10]);
}

describe('ResultSender -> ResultCollector', () => {
  it('delivers keyed tensor sets and collects the expected keys', async () => {
    const collector = track(await ResultCollector.open());
    const sender = track(new ResultSender({ address: collector.address }));
    const keys = [0, 1, 2].map((i) => ({ runId: 'run-a', round: 3, jobId: `shard-${i}` }));
    const receipts = await Promise.all(keys.map((key, i) => sender.send(key, gradients(i), { shard: i })));
    expect(receipts.map((r) => r.attempts)).toEqual([1, 1, 1]);
    const { results, missing } = await collector.collect(keys, { timeoutMs: 10_000 });
    expect(missing).toEqual([]);
    keys.forEach((key, i) => {
      const result = results.get(resultKeyString(key))!;
      expect(result.meta).toEqual({ shard: i });
      expect(Array.from(result.tensors.require('h0.grad').data as Float32Array)).toEqual(Array.from(gradients(i).require('h0.grad').data as Float32Array));
      expect(result.tensors.require('h1.grad').shape).toEqual([10, 10]);
    });
  });

  it('keeps the first delivery of a key and acknowledges repeats as duplicates', async () => {
    const collector = track(await ResultCollector.open());
    const sender = track(new ResultSender({ address: collector.address }));
    const key = { runId: 'run-b', round: 0, jobId: 'rollout-1' };
    expect((await sender.send(key, gradients(1))).duplicate).toBe(false);
    expect((await sender.send(key, gradients(2))).duplicate).toBe(true); // a retried job sending again
    const { results } = await collector.collect([key], { timeoutMs: 10_000 });
    const result = results.get(resultKeyString(key))!;
    expect(result.deliveries).toBe(2);
    expect((result.tensors.require('h0.grad').data as Float32Array)[0]).toBe(Math.fround(Math.cos(1)));
    // Still a duplicate after it was collected.
    expect((await sender.send(key, gradients(3))).duplicate).toBe(true);
    expect(collector.take(key)).toBeUndefined();
  });

  it('rejects a payload corrupted in flight by checksum, and the resend succeeds', async () => {
    const collector = track(await ResultCollector.open());
    const attempts: number[] = [];
    const sender = track(
      new ResultSender({
        address: collector.address,
        encode: { chunkBytes: 4096 },
        beforeSend: (frames, attempt) => {
          attempts.push(attempt);
          if (attempt > 1) return frames;
          const damaged = frames.map((f) => Buffer.from(f)); // copies: the frames view the caller's arrays
          damaged[3][100] ^= 0x40; // second chunk of h0.grad
          return damaged;
        },
      }),
    );
    const key = { runId: 'run-c', round: 1, jobId: 'shard-0' };
    const sent = gradients(7);
    const receipt = await sender.send(key, sent);
    expect(receipt.attempts).toBe(2);
    expect(attempts).toEqual([1, 2]);
    const result = collector.take(key)!;
    expect(result.deliveries).toBe(1);
    expect(Array.from(result.tensors.require('h0.grad').data as Float32Array)).toEqual(Array.from(sent.require('h0.grad').data as Float32Array));
  });

  it('gives up with CHECKSUM_MISMATCH when every attempt is corrupted', async () => {
    const collector = track(await ResultCollector.open());
    const sender = track(
      new ResultSender({
        address: collector.address,
        attempts: 2,
        beforeSend: (frames) => frames.map((f, i) => (i === 1 ? Buffer.from(f).fill(0, 0, 4) : f)),
      }),
    );
    const key = { runId: 'run-d', round: 0, jobId: 'j' };
    await expect(sender.send(key, gradients(1))).rejects.toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect(collector.hasReceived(key)).toBe(false);
  });

  it('refuses an over-size result with MESSAGE_TOO_LARGE without retrying', async () => {
    const collector = track(await ResultCollector.open({ maxMessageBytes: 8 * 1024 }));
    let sends = 0;
    // Frames under the limit (libzmq drops the connection on a single over-size frame), total over it.
    const sender = track(
      new ResultSender({ address: collector.address, encode: { chunkBytes: 4096 }, ackTimeoutMs: 10_000, beforeSend: (f) => (sends++, f) }),
    );
    const error = await sender.send({ runId: 'r', round: 0, jobId: 'big' }, gradients(0, 4096)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe('MESSAGE_TOO_LARGE');
    expect(sends).toBe(1);
  });

  it('still acknowledges the last result when the collector closes right after collecting it', async () => {
    const collector = await ResultCollector.open();
    const sender = track(new ResultSender({ address: collector.address, attempts: 1, ackTimeoutMs: 5000 }));
    const key = { runId: 'r', round: 9, jobId: 'last' };
    const sent = sender.send(key, gradients(0));
    await collector.collect([key], { timeoutMs: 10_000 });
    await collector.close();
    await expect(sent).resolves.toMatchObject({ attempts: 1, duplicate: false });
  });

  it('times out a collect with the missing keys, or returns partial results', async () => {
    const collector = track(await ResultCollector.open());
    const sender = track(new ResultSender({ address: collector.address }));
    const here = { runId: 'r', round: 2, jobId: 'a' };
    const absent = { runId: 'r', round: 2, jobId: 'b' };
    await sender.send(here, gradients(0, 8));
    await expect(collector.collect([here, absent], { timeoutMs: 200 })).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('r/2/b') });
    const partial = await collector.collect([here, absent], { timeoutMs: 200, allowPartial: true });
    expect([...partial.results.keys()]).toEqual([resultKeyString(here)]);
    expect(partial.missing).toEqual([absent]);
  });
});

describe('CURVE', () => {
  it('delivers over an encrypted pair and never delivers to a client with the wrong server key', async () => {
    const server = generateCurveKeyPair();
    expect(server.publicKey).toHaveLength(40);
    const collector = track(await ResultCollector.open({ curve: server }));
    const good = track(new ResultSender({ address: collector.address, curve: { serverPublicKey: server.publicKey } }));
    const key = { runId: 'secure', round: 0, jobId: 'ok' };
    expect((await good.send(key, gradients(0))).attempts).toBe(1);
    expect(collector.take(key)?.tensors.require('h0.grad').data.length).toBe(4096);

    const impostorKey = { runId: 'secure', round: 0, jobId: 'wrong-key' };
    const wrong = track(
      new ResultSender({ address: collector.address, curve: { serverPublicKey: generateCurveKeyPair().publicKey }, attempts: 2, ackTimeoutMs: 500 }),
    );
    await expect(wrong.send(impostorKey, gradients(1))).rejects.toMatchObject({ code: 'TIMEOUT' });
    const plain = track(new ResultSender({ address: collector.address, attempts: 1, ackTimeoutMs: 500 }));
    await expect(plain.send(impostorKey, gradients(1))).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(collector.hasReceived(impostorKey)).toBe(false);
  });

  it('serves parameters over CURVE', async () => {
    const server = generateCurveKeyPair();
    const publisher = track(await ParameterPublisher.open({ curve: server }));
    await publisher.publish(1, gradients(1));
    const subscriber = track(new ParameterSubscriber({ address: publisher.address, curve: { serverPublicKey: server.publicKey } }));
    expect((await subscriber.fetch(1, { timeoutMs: 10_000 })).version).toBe(1);
  });
});

describe('ParameterPublisher -> ParameterSubscriber', () => {
  it('gives a late joiner the latest version, and waiters the version they wait for', async () => {
    const publisher = track(await ParameterPublisher.open());
    await publisher.publish(0, gradients(0), { meta: { scores: [0, 0] } });
    await publisher.publish(1, gradients(1), { meta: { scores: [0.1, -0.1] } });

    const late = track(new ParameterSubscriber({ address: publisher.address }));
    const snapshot = await late.fetch(0, { timeoutMs: 10_000 });
    expect(snapshot.version).toBe(1);
    expect(snapshot.meta).toEqual({ scores: [0.1, -0.1] });
    expect((snapshot.tensors.require('h0.grad').data as Float32Array)[0]).toBe(Math.fround(Math.cos(1)));
    expect(await late.fetch(1)).toBe(snapshot); // cached

    const waiters = [0, 1, 2].map(() => track(new ParameterSubscriber({ address: publisher.address, pollMs: 200, replyGraceMs: 2000 })));
    const pending = waiters.map((s) => s.fetch(2, { timeoutMs: 20_000 }));
    await new Promise((resolve) => setTimeout(resolve, 500)); // several polls answered "not yet"
    await publisher.publish(2, gradients(2));
    const got = await Promise.all(pending);
    expect(got.map((s) => s.version)).toEqual([2, 2, 2]);
    expect((got[0].tensors.require('h0.grad').data as Float32Array)[0]).toBe(Math.fround(Math.cos(2)));
  });

  it('only publishes increasing versions', async () => {
    const publisher = track(await ParameterPublisher.open());
    await publisher.publish(3, gradients(0));
    await expect(publisher.publish(3, gradients(0))).rejects.toMatchObject({ code: 'VERSION_CONFLICT' });
    expect(publisher.latestVersion).toBe(3);
  });

  it('times out when no version >= r appears, saying what it saw', async () => {
    const publisher = track(await ParameterPublisher.open());
    await publisher.publish(4, gradients(0));
    const subscriber = track(new ParameterSubscriber({ address: publisher.address, pollMs: 100 }));
    await expect(subscriber.fetch(5, { timeoutMs: 400 })).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('latest seen: 4') });
  });

  it('keeps asking until a publisher that starts late answers', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const subscriber = track(new ParameterSubscriber({ address: `tcp://127.0.0.1:${port}`, pollMs: 100, replyGraceMs: 200 }));
    const pending = subscriber.fetch(0, { timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const publisher = track(await ParameterPublisher.open({ bind: `tcp://127.0.0.1:${port}` }));
    await publisher.publish(0, gradients(0));
    expect((await pending).version).toBe(0);
  });
});
