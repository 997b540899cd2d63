import { describe, expect, it } from 'vitest';
import {
  TensorSet,
  TransportError,
  checksumOf,
  createTensor,
  decodeTensorSet,
  encodeTensorSet,
  type FrameHeader,
} from '@scaleot/transport';

function sampleSet(): TensorSet {
  const weights = new Float32Array(1000).map((_, i) => Math.sin(i) * 1e3);
  return new TensorSet()
    .add('h0.w_down', weights, [10, 100])
    .add('h0.half', new Uint16Array([0x3c00, 0xc000, 0x7bff]), [3], 'F16')
    .add('h0.bf16', new Uint16Array([0x3f80, 0x4000]), [2], 'BF16')
    .add('mask', new Int32Array([1, 0, 1, 1]))
    .add('ids', new BigInt64Array([1n, -2n, 2n ** 62n]))
    .add('bytes', new Uint8Array([0, 255, 7]))
    .add('empty', new Float32Array(0), [0, 5]);
}

function expectCode(fn: () => unknown, code: string): TransportError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe(code);
    return error as TransportError;
  }
  throw new Error(`expected TransportError ${code}`);
}

describe('tensor wire format', () => {
  it('round-trips every dtype, shapes and meta, chunked or not', () => {
    const set = sampleSet();
    set.set('scored', { ...createTensor(new Float32Array([0.5, -0.25])), meta: { layer: 3 } });
    for (const chunkBytes of [8, 64, 4 * 1024 * 1024]) {
      const decoded = decodeTensorSet(encodeTensorSet(set, { chunkBytes }));
      expect(decoded.names).toEqual(set.names);
      for (const [name, tensor] of set) {
        const got = decoded.require(name);
        expect(got.dtype).toBe(tensor.dtype);
        expect(got.shape).toEqual(tensor.shape);
        expect(got.data.constructor).toBe(tensor.data.constructor);
        expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(tensor.data as ArrayLike<number | bigint>));
      }
      expect(decoded.require('scored').meta).toEqual({ layer: 3 });
    }
  });

  it('splits a tensor into chunks of chunkBytes, each with its own checksum', () => {
    const set = new TensorSet().add('w', new Float32Array(25)); // 100 bytes
    const frames = encodeTensorSet(set, { chunkBytes: 32 });
    expect(frames).toHaveLength(8); // 4 chunks: 32+32+32+4 bytes
    const headers = frames.filter((_, i) => i % 2 === 0).map((f) => JSON.parse(f.toString()) as FrameHeader);
    expect(headers.map((h) => h.chunk)).toEqual([0, 1, 2, 3].map((index) => ({ index, count: 4 })));
    expect(headers.map((h) => h.byteLength)).toEqual([100, 100, 100, 100]);
    expect(frames.filter((_, i) => i % 2 === 1).map((f) => f.byteLength)).toEqual([32, 32, 32, 4]);
    for (let i = 0; i < frames.length; i += 2) expect(headers[i / 2].checksum).toBe(checksumOf(frames[i + 1]));
  });

  it('sends payload frames as views of the tensor memory (no copy)', () => {
    const data = new Float32Array(64);
    const frames = encodeTensorSet(new TensorSet().add('w', data), { chunkBytes: 128 });
    expect(frames[1].buffer).toBe(data.buffer);
    expect(frames[3].buffer).toBe(data.buffer);
    expect(frames[3].byteOffset).toBe(128);
  });

  it('decodes a single-chunk tensor as a view of the received frame', () => {
    const frames = encodeTensorSet(new TensorSet().add('w', new Float32Array([1, 2, 3])));
    const received = frames.map((f) => Buffer.from(f)); // as if off the wire
    const tensor = decodeTensorSet(received).require('w');
    expect(tensor.data.buffer).toBe(received[1].buffer);
  });

  it('rejects a flipped payload byte with CHECKSUM_MISMATCH naming tensor and chunk', () => {
    const frames = encodeTensorSet(new TensorSet().add('grad', new Float32Array(64).fill(1)), { chunkBytes: 64 });
    const corrupted = frames.map((f) => Buffer.from(f));
    corrupted[5][10] ^= 0x01;
    const error = expectCode(() => decodeTensorSet(corrupted), 'CHECKSUM_MISMATCH');
    expect(error.message).toContain('chunk 3/4 of tensor "grad"');
    expect(error.unrecoverable).toBe(false);
    // Verification can be turned off (then the flip goes through unnoticed).
    expect(() => decodeTensorSet(corrupted, { verifyChecksums: false })).not.toThrow();
  });

  it('enforces maxMessageBytes on receipt', () => {
    const frames = encodeTensorSet(new TensorSet().add('w', new Float32Array(1024)));
    const error = expectCode(() => decodeTensorSet(frames, { maxMessageBytes: 4000 }), 'MESSAGE_TOO_LARGE');
    expect(error.unrecoverable).toBe(true);
    expect(decodeTensorSet(frames, { maxMessageBytes: 8192 }).byteLength).toBe(4096);
  });

  it('rejects malformed frames with BAD_FRAME', () => {
    const good = encodeTensorSet(new TensorSet().add('w', new Float32Array(8)), { chunkBytes: 16 });
    const header = JSON.parse(good[0].toString()) as FrameHeader;
    const withHeader = (patch: Record<string, unknown>) => [Buffer.from(JSON.stringify({ ...header, ...patch })), ...good.slice(1)];
    const cases: Array<[string, Buffer[]]> = [
      ['odd frame count', good.slice(0, 3)],
      ['non-JSON header', [Buffer.from('{nope'), ...good.slice(1)]],
      ['future version', withHeader({ v: 2 })],
      ['unknown dtype', withHeader({ dtype: 'F64' })],
      ['negative dim', withHeader({ shape: [-8] })],
      ['byteLength off', withHeader({ byteLength: 31 })],
      ['bad chunk', withHeader({ chunk: { index: 0, count: 0 } })],
      ['missing chunks', good.slice(0, 2)],
      ['chunks out of order', [good[2], good[3], good[0], good[1]]],
      ['short payload', [good[0], good[1].subarray(0, 8), good[2], good[3]]],
      ['unknown checksum', withHeader({ checksum: 'sha3:00' })],
    ];
    for (const [label, frames] of cases) {
      const error = expectCode(() => decodeTensorSet(frames, { verifyChecksums: label !== 'short payload' }), 'BAD_FRAME');
      expect(error.message, label).not.toBe('');
    }
  });

  it('refuses inconsistent tensors when they are built', () => {
    expectCode(() => createTensor(new Float32Array(6), [4, 2]), 'INVALID_TENSOR');
    expectCode(() => createTensor(new Uint16Array(2)), 'INVALID_TENSOR');
    expectCode(() => new TensorSet().set('x', { dtype: 'I32', shape: [2], data: new Float32Array(2) }), 'INVALID_TENSOR');
  });

  it('computes the standard crc32 and xxh32 check values', () => {
    expect(checksumOf(Buffer.from('123456789'), 'crc32')).toBe('crc32:cbf43926');
    expect(checksumOf(Buffer.alloc(0), 'xxh32')).toBe('xxh32:02cc5d05');
    expect(checksumOf(Buffer.from('abc'), 'xxh32')).toBe('xxh32:32d153ff');
    // Long enough for the 4-lane loop, and unaligned (read through a DataView).
    const text = Buffer.from('x' + 'Nobody inspects the spammish repetition');
    expect(checksumOf(text.subarray(1), 'xxh32')).toBe('xxh32:e2293b2f');
  });
});
