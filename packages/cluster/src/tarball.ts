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

/** Regular files of a ustar archive (directories skipped; links and other types refused). */
export function unpackTar(archive: Buffer): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = [];
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) => header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '').trim();
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12) || '0', 8);
    const type = field(156, 1) || '0';
    if (!Number.isSafeInteger(size) || size < 0 || offset + 512 + size > archive.length) throw new ClusterError('BAD_REQUEST', `tar entry "${name}" is truncated or has a bad size`, { where: 'tar' });
    if (type === '0') out.push({ name: name.replace(/^\.\//, ''), data: Buffer.from(archive.subarray(offset + 512, offset + 512 + size)) });
    else if (type !== '5' && type !== 'x' && type !== 'g') throw new ClusterError('BAD_REQUEST', `tar entry "${name}" is of type ${type}; only regular files are accepted`, { where: 'tar' });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
