import { afterEach, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import {
  ParameterPublisher,
  ParameterSubscriber,
  ResultCollector,
  ResultSender,
  TensorSet,
  generateCurveKeyPair,
  refusedCurveHandshakes,
  z85Encode,
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
const grads = () => new TensorSet().add('g', new Float32Array(64).fill(1));

describe('CURVE with an allow-list of client keys (ZAP)', () => {
  it('encodes Z85 as ZeroMQ RFC 32 does', () => {
    // The RFC's test vector.
    expect(z85Encode(Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld');
  });

  it('takes results from an allowed worker key only: an unlisted client holding the server key cannot push', async () => {
    const server = generateCurveKeyPair();
    const worker = generateCurveKeyPair();
    const collector = track(await ResultCollector.open({ curve: { ...server, allowedClientKeys: [worker.publicKey] } }));
    const allowed = track(new ResultSender({ address: collector.address, curve: { serverPublicKey: server.publicKey, ...worker } }));
    const key = { runId: 'zap', round: 0, jobId: 'allowed' };
    expect((await allowed.send(key, grads())).attempts).toBe(1);
    expect(collector.hasReceived(key)).toBe(true);

    const refusedBefore = refusedCurveHandshakes();
    const rogueKey = { runId: 'zap', round: 0, jobId: 'rogue' };
    const rogue = track(new ResultSender({ address: collector.address, curve: { serverPublicKey: server.publicKey, ...generateCurveKeyPair() }, attempts: 2, ackTimeoutMs: 500 }));
    await expect(rogue.send(rogueKey, grads())).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(collector.hasReceived(rogueKey)).toBe(false);
    expect(refusedCurveHandshakes()).toBeGreaterThan(refusedBefore);
  });

  it('serves parameters to an allowed worker key only: an unlisted client receives nothing', async () => {
    const server = generateCurveKeyPair();
    const worker = generateCurveKeyPair();
    const publisher = track(await ParameterPublisher.open({ curve: { ...server, allowedClientKeys: [worker.publicKey] } }));
    await publisher.publish(1, grads());
    const allowed = track(new ParameterSubscriber({ address: publisher.address, curve: { serverPublicKey: server.publicKey, ...worker } }));
    expect((await allowed.fetch(1, { timeoutMs: 10_000 })).version).toBe(1);
    const rogue = track(new ParameterSubscriber({ address: publisher.address, curve: { serverPublicKey: server.publicKey, ...generateCurveKeyPair() } }));
    await expect(rogue.fetch(1, { timeoutMs: 1500 })).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('leaves servers without an allow-list open to any client holding the server key', async () => {
    const guarded = generateCurveKeyPair();
    const open = generateCurveKeyPair();
    const a = track(await ResultCollector.open({ curve: { ...guarded, allowedClientKeys: [generateCurveKeyPair().publicKey] } }));
    const b = track(await ResultCollector.open({ curve: open }));
    const sender = track(new ResultSender({ address: b.address, curve: { serverPublicKey: open.publicKey } }));
    expect((await sender.send({ runId: 'open', round: 0, jobId: 'x' }, grads())).attempts).toBe(1);
    expect(a.address).not.toBe(b.address);
    expect(zmq.capability.curve).toBe(true);
  });
});
