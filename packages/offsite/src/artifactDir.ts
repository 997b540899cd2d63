import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { OffsiteError } from './OffsiteError.js';

/** One file of an artifact directory: bytes (written in pieces), a file to copy, or a streaming writer. */
export type ArtifactFile =
  | { name: string; chunks: Uint8Array[] }
  | { name: string; copyFrom: string }
  | { name: string; write: (handle: FileHandle) => Promise<void> };

/**
 * Writes a whole directory atomically: every file goes into a hidden temp dir beside `dir`, is fsynced,
 * and the temp dir is renamed onto `dir`. A failure leaves nothing; readers never see half an artifact.
 * An existing non-empty `dir` is an error unless `overwrite`.
 */
export async function writeArtifactDir(dir: string, files: ArtifactFile[], options: { overwrite?: boolean } = {}): Promise<void> {
  const target = resolve(dir);
  if (existsSync(target) && (await readdir(target)).length > 0 && !options.overwrite) {
    throw new OffsiteError('OUTPUT_EXISTS', 'output directory exists and is not empty; choose another path or pass overwrite', { where: target });
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await mkdir(tmp);
  try {
    for (const f of files) {
      const path = join(tmp, f.name);
      if ('copyFrom' in f) {
        await copyFile(f.copyFrom, path);
        continue;
      }
      const fh = await open(path, 'wx');
      try {
        if ('write' in f) await f.write(fh);
        else for (const c of f.chunks) await fh.write(c);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    if (existsSync(target)) {
      const old = `${tmp}.old`;
      await rename(target, old);
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
