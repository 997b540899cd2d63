import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** A path in the same directory as `target`, so the final rename never crosses file systems. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes `target` all at once: the bytes go to a temp file beside it, are fsynced, then renamed over
 * the target. A crash leaves either the old file or the new one, never a partial one.
 * `write` receives the open file handle and may write in as many pieces as it likes.
 */
export async function atomicWrite(
  target: string,
  write: (handle: import('node:fs/promises').FileHandle) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  // The mode is set at creation: a secret is never readable by others, not even for a moment.
  const handle = await open(tmp, 'wx', options.mode ?? 0o666);
  try {
    await write(handle);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export interface AtomicWriteOptions {
  /** File mode (before the umask). Default 0o666; secrets (tokens, keys) use 0o600. */
  mode?: number;
}

/** Atomic write of a string or bytes. */
export async function atomicWriteFile(target: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  await atomicWrite(target, async (h) => {
    await h.writeFile(data);
  }, options);
}

/** Atomic write of pretty-printed JSON with a trailing newline. */
export async function atomicWriteJson(target: string, value: unknown, options: AtomicWriteOptions = {}): Promise<void> {
  await atomicWriteFile(target, `${JSON.stringify(value, null, 2)}\n`, options);
}
