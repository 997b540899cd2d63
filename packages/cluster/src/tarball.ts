import { ClusterError } from './ClusterError.js';

/**
 * A minimal ustar writer/reader for artifact directories (flat: regular files only), enough for
 * `tar -xf` on the data owner's side and for uploading an adapter back.
 */
export function packTar(files: { name: string; data: Uint8Array; mtime?: number }[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    if (Buffer.byteLength(file.name) > 100) throw new ClusterError('BAD_REQUEST', `file name "${file.name}" is too long for a tar entry`, { where: 'tar' });
    const header = Buffer.alloc(512);
    header.write(file.name, 0, 100, 'utf8');
    header.write('0000644\0', 100, 8, 'ascii');
    header.write('0000000\0', 108, 8, 'ascii');
    header.write('0000000\0', 116, 8, 'ascii');
    header.write(`${file.data.byteLength.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
    header.write(`${Math.floor((file.mtime ?? Date.now()) / 1000).toString(8).padStart(11, '0')}\0`, 136, 12, 'ascii');
    header.write('        ', 148, 8, 'ascii');
    header.write('0', 156, 1, 'ascii');
    header.write('ustar\0', 257, 6, 'ascii');
    header.write('00', 263, 2, 'ascii');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
    parts.push(header, Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength));
    const pad = (512 - (file.data.byteLength % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/**
 * Regular files of a ustar archive (directories skipped; links and other types refused). Messages name
 * the entry by its position only: an archive's bytes are never echoed back to the client.
 */
export function unpackTar(archive: Buffer, limits: { maxEntries?: number } = {}): { name: string; data: Buffer }[] {
  const maxEntries = limits.maxEntries ?? 1000;
  const out: { name: string; data: Buffer }[] = [];
  let offset = 0;
  let entry = 0;
  const bad = (message: string) => new ClusterError('BAD_UPLOAD', message, { where: 'tar' });
  if (archive.length > 0 && archive.length < 512) throw bad('the archive is truncated (shorter than one 512-byte tar header)');
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    entry++;
    if (entry > maxEntries) throw bad(`the archive holds more than ${maxEntries} entries`);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
    const field = (start: number, length: number) => header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '').trim();
    const stored = parseInt(field(148, 8), 8);
    if (!Number.isFinite(stored) || stored !== sum) throw bad(`tar entry ${entry} has a bad header checksum (not a tar archive, or a corrupt one)`);
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const sizeField = field(124, 12);
    const size = /^[0-7]+$/.test(sizeField) ? parseInt(sizeField, 8) : NaN;
    const type = field(156, 1) || '0';
    if (!Number.isSafeInteger(size) || size < 0 || offset + 512 + size > archive.length) throw bad(`tar entry ${entry} is truncated or has a bad size`);
    if (type === '0') {
      const clean = name.replace(/^\.\//, '');
      if (clean === '' || clean.startsWith('/') || clean.split('/').includes('..') || clean.includes('\\')) throw bad(`tar entry ${entry} has an absolute or ".." path; send the artifact's files at the top of the archive`);
      out.push({ name: clean, data: Buffer.from(archive.subarray(offset + 512, offset + 512 + size)) });
    } else if (type !== '5' && type !== 'x' && type !== 'g') throw bad(`tar entry ${entry} is a link or special file (type ${/^[0-9A-Za-z]$/.test(type) ? type : '?'}); only regular files are accepted`);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
