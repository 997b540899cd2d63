import { checksumMatches, checksumOf } from './checksum.js';
import { bytesPerElement, emptyArray, isDType, viewAs, type DType } from './dtypes.js';
import { elementCount, type JsonValue, type Tensor } from './Tensor.js';
import { TensorSet } from './TensorSet.js';
import { TransportError } from './TransportError.js';

/** Wire format version in every header; a receiver rejects other versions with BAD_FRAME. */
export const WIRE_VERSION = 1;

/**
 * Default payload bytes per frame. Chunks are frames of one ZeroMQ multipart message (delivered
 * all-or-nothing, so reassembly never sees a partial tensor). A tensor that fits one chunk is received
 * as a view of the frame (no copy); a chunked one is copied once into fresh memory, which measured
 * 0.5-1.3 GB/s of CPU on the build VMs (first-touch page faults dominate) against no measurable gain
 * from smaller frames on the wire. So the default keeps every realistic tensor (harmonizer matrices are
 * a few MiB) in one frame and chunks only giants such as embedding matrices.
 */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

/** Default cap on one received message (all frames together): 1 GiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;

/** Header frame sent before each payload frame. */
export interface FrameHeader {
  v: typeof WIRE_VERSION;
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes of the whole tensor (all chunks). */
  byteLength: number;
  /** `"crc32:<hex>"` (or `"xxh32:<hex>"`) of this chunk's payload; null when sent without checksums. */
  checksum: string | null;
  chunk: { index: number; count: number };
  meta?: JsonValue;
}

export interface EncodeOptions {
  /** Payload bytes per frame; bigger tensors are split. Default {@link DEFAULT_CHUNK_BYTES}. */
  chunkBytes?: number;
  /** Checksum each chunk. Default true. */
  checksum?: boolean;
}

export interface DecodeOptions {
  /** Reject messages whose frames total more than this. Default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /** Verify chunk checksums. Default true. */
  verifyChecksums?: boolean;
  /** Reject chunks that carry no checksum. Default false (a sender may turn checksums off). */
  requireChecksums?: boolean;
}

/**
 * Frames for `set`: `[header, payload]` per chunk of each tensor, in insertion order. Payload frames are
 * views over the tensors' memory (no copy).
 */
export function encodeTensorSet(set: TensorSet, options: EncodeOptions = {}): Buffer[] {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 8 || chunkBytes % 8 !== 0) {
    throw new TransportError('INVALID_TENSOR', `chunkBytes must be a positive multiple of 8, got ${chunkBytes}`);
  }
  const withChecksum = options.checksum ?? true;
  const frames: Buffer[] = [];
  for (const [name, tensor] of set) {
    const bytes = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    const count = Math.max(1, Math.ceil(bytes.byteLength / chunkBytes));
    for (let index = 0; index < count; index++) {
      const payload = bytes.subarray(index * chunkBytes, Math.min(bytes.byteLength, (index + 1) * chunkBytes));
      const header: FrameHeader = {
        v: WIRE_VERSION,
        name,
        dtype: tensor.dtype,
        shape: [...tensor.shape],
        byteLength: bytes.byteLength,
        checksum: withChecksum ? checksumOf(payload) : null,
        chunk: { index, count },
      };
      if (tensor.meta !== undefined) header.meta = tensor.meta;
      frames.push(Buffer.from(JSON.stringify(header)), payload);
    }
  }
  return frames;
}

/** Sum of frame lengths: what a receiver compares against `maxMessageBytes`. */
export function framesByteLength(frames: readonly Uint8Array[]): number {
  let total = 0;
  for (const frame of frames) total += frame.byteLength;
  return total;
}

/**
 * Rebuilds the set from `[header, payload]*` frames. Throws TransportError: MESSAGE_TOO_LARGE before any
 * parsing, BAD_FRAME for anything off-format, CHECKSUM_MISMATCH naming the tensor and chunk.
 */
export function decodeTensorSet(frames: readonly Buffer[], options: DecodeOptions = {}): TensorSet {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const verify = options.verifyChecksums ?? true;
  const total = framesByteLength(frames);
  if (total > maxMessageBytes) {
    throw new TransportError('MESSAGE_TOO_LARGE', `message of ${total} bytes exceeds maxMessageBytes ${maxMessageBytes}; raise the limit on both ends or split the set`);
  }
  if (frames.length % 2 !== 0) {
    throw new TransportError('BAD_FRAME', `expected [header, payload] pairs but got ${frames.length} frames`);
  }
  const set = new TensorSet();
  let i = 0;
  while (i < frames.length) {
    const first = parseHeader(frames[i], i);
    if (first.chunk.index !== 0) {
      throw new TransportError('BAD_FRAME', `tensor "${first.name}" starts at chunk ${first.chunk.index}, expected 0`, { where: `frame ${i}` });
    }
    if (set.has(first.name)) throw new TransportError('BAD_FRAME', `tensor "${first.name}" appears twice`, { where: `frame ${i}` });
    if (first.byteLength > maxMessageBytes) {
      throw new TransportError('MESSAGE_TOO_LARGE', `tensor "${first.name}" declares ${first.byteLength} bytes, over maxMessageBytes ${maxMessageBytes}`);
    }
    const count = first.chunk.count;
    if (i + 2 * count > frames.length) {
      throw new TransportError('BAD_FRAME', `tensor "${first.name}" declares ${count} chunks but the message ends early`, { where: `frame ${i}` });
    }
    const payloads: Buffer[] = [];
    let received = 0;
    for (let c = 0; c < count; c++) {
      const at = i + 2 * c;
      const header = c === 0 ? first : parseHeader(frames[at], at);
      if (
        header.name !== first.name ||
        header.chunk.index !== c ||
        header.chunk.count !== count ||
        header.dtype !== first.dtype ||
        header.byteLength !== first.byteLength
      ) {
        throw new TransportError('BAD_FRAME', `chunk ${c} of tensor "${first.name}" is out of sequence or disagrees with chunk 0`, { where: `frame ${at}` });
      }
      const payload = frames[at + 1];
      if (header.checksum === null) {
        if (options.requireChecksums) {
          throw new TransportError('BAD_FRAME', `chunk ${c} of tensor "${first.name}" carries no checksum and this receiver requires one`);
        }
      } else if (verify) {
        const ok = checksumMatches(header.checksum, payload);
        if (ok === undefined) throw new TransportError('BAD_FRAME', `unknown checksum algorithm in "${header.checksum}"`, { where: `frame ${at}` });
        if (!ok) {
          throw new TransportError('CHECKSUM_MISMATCH', `chunk ${c + 1}/${count} of tensor "${first.name}" (${payload.byteLength} bytes) fails its ${header.checksum.split(':')[0]} checksum; the message was dropped, resend it`);
        }
      }
      received += payload.byteLength;
      payloads.push(payload);
    }
    if (received !== first.byteLength) {
      throw new TransportError('BAD_FRAME', `tensor "${first.name}" declares ${first.byteLength} bytes but its chunks hold ${received}`);
    }
    let data;
    if (payloads.length === 1) {
      data = viewAs(first.dtype, payloads[0]);
    } else {
      data = emptyArray(first.dtype, first.byteLength);
      const target = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let offset = 0;
      for (const payload of payloads) {
        target.set(payload, offset);
        offset += payload.byteLength;
      }
    }
    const tensor: Tensor = first.meta === undefined ? { dtype: first.dtype, shape: first.shape, data } : { dtype: first.dtype, shape: first.shape, data, meta: first.meta };
    set.set(first.name, tensor);
    i += 2 * count;
  }
  return set;
}

const MAX_HEADER_BYTES = 64 * 1024;

function parseHeader(frame: Buffer | undefined, index: number): FrameHeader {
  const where = `frame ${index}`;
  if (!frame || frame.byteLength > MAX_HEADER_BYTES) {
    throw new TransportError('BAD_FRAME', `header frame missing or over ${MAX_HEADER_BYTES} bytes`, { where });
  }
  let value: unknown;
  try {
    value = JSON.parse(frame.toString('utf8'));
  } catch (cause) {
    throw new TransportError('BAD_FRAME', 'header frame is not JSON', { where, cause });
  }
  if (typeof value !== 'object' || value === null) throw new TransportError('BAD_FRAME', 'header frame is not a JSON object', { where });
  const h = value as Record<string, unknown>;
  if (h.v !== WIRE_VERSION) throw new TransportError('BAD_FRAME', `wire version ${String(h.v)} is not ${WIRE_VERSION}; upgrade the older side`, { where });
  if (typeof h.name !== 'string' || h.name.length === 0) throw new TransportError('BAD_FRAME', 'header.name must be a non-empty string', { where });
  if (!isDType(h.dtype)) throw new TransportError('BAD_FRAME', `header.dtype ${JSON.stringify(h.dtype)} is not a known dtype`, { where });
  if (!Array.isArray(h.shape) || !h.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TransportError('BAD_FRAME', 'header.shape must be an array of non-negative integers', { where });
  }
  if (!Number.isSafeInteger(h.byteLength) || (h.byteLength as number) !== elementCount(h.shape as number[]) * bytesPerElement(h.dtype)) {
    throw new TransportError('BAD_FRAME', `header.byteLength ${String(h.byteLength)} does not match shape and dtype`, { where });
  }
  if (h.checksum !== null && typeof h.checksum !== 'string') throw new TransportError('BAD_FRAME', 'header.checksum must be a string or null', { where });
  const chunk = h.chunk as Record<string, unknown> | undefined;
  if (
    typeof chunk !== 'object' ||
    chunk === null ||
    !Number.isSafeInteger(chunk.index) ||
    !Number.isSafeInteger(chunk.count) ||
    (chunk.count as number) < 1 ||
    (chunk.index as number) < 0 ||
    (chunk.index as number) >= (chunk.count as number)
  ) {
    throw new TransportError('BAD_FRAME', 'header.chunk must be {index, count} with 0 <= index < count', { where });
  }
  return h as unknown as FrameHeader;
}
