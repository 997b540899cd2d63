import { readFile } from 'node:fs/promises';
import { atomicWriteFile } from '@scaleot/core';
import { randomWindows, type Rng } from '@scaleot/data';
import { tokenBatch, type TokenBatch } from '@scaleot/model';
import { ClusterError } from './ClusterError.js';

/**
 * Token streams travel through shared storage, not Redis (job payloads only name windows of them):
 * raw little-endian int32, one file per split.
 */
export async function writeTokenStream(path: string, stream: Int32Array): Promise<void> {
  await atomicWriteFile(path, Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength));
}

const streamCache = new Map<string, Promise<Int32Array>>();

/** Reads a stream written by {@link writeTokenStream}; memoised per path (streams are immutable once written). */
export function readTokenStream(path: string): Promise<Int32Array> {
  let cached = streamCache.get(path);
  if (!cached) {
    cached = readFile(path).then((bytes) => {
      if (bytes.byteLength % 4 !== 0) throw new ClusterError('BAD_DATASET', `${bytes.byteLength} bytes is not a whole number of int32 tokens`, { where: path });
      const copy = new Int32Array(bytes.byteLength / 4);
      Buffer.from(copy.buffer).set(bytes);
      return copy;
    });
    cached.catch(() => streamCache.delete(path));
    streamCache.set(path, cached);
  }
  return cached;
}

/**
 * The start offsets `randomWindows(stream, ctx, count, rng)` would cut, drawing the same numbers from
 * `rng`: it is run on a stream of positions, so each window's first entry is its start.
 */
export function randomWindowStarts(streamLength: number, ctx: number, count: number, rng: Rng): number[] {
  const positions = new Int32Array(streamLength);
  for (let i = 0; i < streamLength; i++) positions[i] = i;
  return randomWindows(positions, ctx, count, rng).map((w) => w[0]);
}

/** The batch of windows of `windowLength` tokens at `starts` (same rows as randomWindows gives). */
export function windowBatch(stream: Int32Array, starts: readonly number[], windowLength: number): TokenBatch {
  const rows = starts.map((start) => {
    if (!Number.isInteger(start) || start < 0 || start + windowLength > stream.length) {
      throw new ClusterError('BAD_BATCH', `window at ${start} of ${windowLength} tokens does not fit a stream of ${stream.length}`, { where: 'batch', unrecoverable: true });
    }
    return stream.slice(start, start + windowLength);
  });
  return tokenBatch(rows);
}
