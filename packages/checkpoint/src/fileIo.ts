import type { FileHandle } from 'node:fs/promises';

/** Node rejects single reads/writes above 2 GiB; large tensors go in pieces. */
const MAX_IO_CHUNK = 1 << 30;

/** Fills `target` from `position`; false when the file ends first. */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<boolean> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, MAX_IO_CHUNK);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) return false;
    done += bytesRead;
  }
  return true;
}

/** Writes all of `bytes` at the handle's current position. */
export async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(bytes.length - done, MAX_IO_CHUNK);
    const { bytesWritten } = await handle.write(bytes, done, length, null);
    done += bytesWritten;
  }
}

/** The bytes of a typed array, as stored in memory (little-endian on every Node target). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
