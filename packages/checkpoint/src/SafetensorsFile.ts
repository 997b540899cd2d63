import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import { elementCount, isSupportedDType, SUPPORTED_DTYPES, type SafetensorsDType } from './dtypes.js';
import { readFully } from './fileIo.js';
import { bfloat16ToFloat32, float16ToFloat32, halfToFloatBits } from './halfFloat.js';
import { checkHeaderLength, parseHeader, type HeaderEntry } from './header.js';

export interface TensorInfo {
  name: string;
  /** A {@link DType} for every tensor this project can decode; other safetensors dtypes can only be read raw. */
  dtype: SafetensorsDType;
  shape: number[];
  /** Resolved path of the file that holds the tensor. */
  file: string;
  /** [begin, end) relative to the start of the data buffer, as in the header. */
  dataOffsets: [number, number];
}

/**
 * One .safetensors file. The header is read and fully validated at open; tensor data is read on
 * demand with positional reads into a fresh buffer per tensor, so memory stays at the size of the
 * tensors actually held, never the file.
 */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Absolute file position of the data buffer (8 + header length). */
  readonly dataStart: number;
  private readonly entries: Map<string, HeaderEntry>;
  private handle: FileHandle | undefined;
  /** Tensor-data bytes read from this file so far (headers excluded): what a partial load touched. */
  bytesRead = 0;

  private constructor(path: string, handle: FileHandle, dataStart: number, metadata: Record<string, string>, entries: Map<string, HeaderEntry>) {
    this.path = path;
    this.handle = handle;
    this.dataStart = dataStart;
    this.metadata = metadata;
    this.entries = entries;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const file = resolve(path);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new CheckpointError('MISSING_SHARD', file, 'safetensors file does not exist; check the path or re-download the checkpoint.', { cause });
      }
      throw cause;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) {
        throw new CheckpointError('NOT_A_CHECKPOINT', file, 'is not a regular file; pass the path of a .safetensors file.');
      }
      const prefix = new Uint8Array(8);
      await readFully(handle, prefix.subarray(0, Math.min(8, stat.size)), 0);
      const headerLength = checkHeaderLength(file, stat.size, prefix);
      const headerBytes = new Uint8Array(headerLength);
      if (!(await readFully(handle, headerBytes, 8))) {
        throw new CheckpointError('TRUNCATED', file, 'file shrank while its header was read; retry once it is fully written.');
      }
      const dataStart = 8 + headerLength;
      const { metadata, tensors } = parseHeader(file, headerBytes, stat.size - dataStart);
      return new SafetensorsFile(file, handle, dataStart, metadata, tensors);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** Every tensor of a float file as float32 (F16/BF16 upcast), by name, in storage order. */
  static async readAllFloat32(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const file = await SafetensorsFile.open(path);
    try {
      const out = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const name of file.names()) out.set(name, { shape: file.info(name).shape.slice(), data: await file.readFloat32(name) });
      return out;
    } finally {
      await file.close();
    }
  }

  /** The 8-byte length and the JSON header exactly as stored (a plug-in copies them verbatim). */
  async headerBytes(): Promise<Uint8Array> {
    const out = new Uint8Array(this.dataStart);
    if (!(await readFully(this.fileHandle(), out, 0))) throw new CheckpointError('TRUNCATED', this.path, 'file shrank while its header was read; retry once it is fully written.');
    return out;
  }

  /** Tensor names in storage (data offset) order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { name, dtype: e.dtype, shape: [...e.shape], file: this.path, dataOffsets: [e.dataOffsets[0], e.dataOffsets[1]] };
  }

  /** The exact stored bytes, in a buffer of their own. */
  async readRaw(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const out = new Uint8Array(e.dataOffsets[1] - e.dataOffsets[0]);
    await this.readInto(name, e, out);
    return out;
  }

  /**
   * readFloat32 into `out` (at least as long as the tensor), no allocation: returns the filled prefix.
   * F16/BF16 bits are read into the upper half of the prefix's bytes and widened in place, front to back
   * (element i is read before it is written, and later bits lie above every float written so far).
   */
  async readFloat32Into(name: string, out: Float32Array): Promise<Float32Array> {
    const e = this.entry(name);
    const n = elementCount(e.shape);
    if (out.length < n) throw new CheckpointError('BYTE_LENGTH_MISMATCH', this.path, `readFloat32Into needs room for ${n} floats, got ${out.length}`, { tensor: name });
    const target = out.subarray(0, n);
    const bytes = new Uint8Array(target.buffer, target.byteOffset, n * 4);
    switch (e.dtype) {
      case 'F32':
        await this.readInto(name, e, bytes);
        return target;
      case 'F16':
      case 'BF16': {
        const bits = new Uint16Array(target.buffer, target.byteOffset + n * 2, n);
        await this.readInto(name, e, new Uint8Array(bits.buffer, bits.byteOffset, n * 2));
        const outBits = new Uint32Array(target.buffer, target.byteOffset, n);
        if (e.dtype === 'BF16') for (let i = 0; i < n; i++) outBits[i] = bits[i] << 16;
        else {
          const t = halfToFloatBits();
          for (let i = 0; i < n; i++) outBits[i] = t[bits[i]];
        }
        return target;
      }
      default:
        throw this.unsupported(name, e.dtype, 'readFloat32', ['F32', 'F16', 'BF16'], e.dtype === 'I64' ? ' Use readInt64 for I64 tensors.' : '');
    }
  }

  /** F32 as stored; F16 and BF16 widened exactly. Other dtypes: UNSUPPORTED_DTYPE. */
  async readFloat32(name: string): Promise<Float32Array> {
    const e = this.entry(name);
    const n = elementCount(e.shape);
    switch (e.dtype) {
      case 'F32': {
        // Reading straight into an aligned Float32Array also takes care of unaligned offsets.
        const out = new Float32Array(n);
        await this.readInto(name, e, new Uint8Array(out.buffer));
        return out;
      }
      case 'F16':
      case 'BF16': {
        const bits = new Uint16Array(n);
        await this.readInto(name, e, new Uint8Array(bits.buffer));
        return e.dtype === 'F16' ? float16ToFloat32(bits) : bfloat16ToFloat32(bits);
      }
      default:
        throw this.unsupported(name, e.dtype, 'readFloat32', ['F32', 'F16', 'BF16'], e.dtype === 'I64' ? ' Use readInt64 for I64 tensors.' : '');
    }
  }

  async readInt64(name: string): Promise<BigInt64Array> {
    const e = this.entry(name);
    if (e.dtype !== 'I64') throw this.unsupported(name, e.dtype, 'readInt64', ['I64'], isSupportedDType(e.dtype) ? ' Use readFloat32 for float tensors.' : '');
    const out = new BigInt64Array(elementCount(e.shape));
    await this.readInto(name, e, new Uint8Array(out.buffer));
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }

  private entry(name: string): HeaderEntry {
    const e = this.entries.get(name);
    if (!e) {
      throw new CheckpointError('MISSING_TENSOR', this.path, `has no tensor "${name}" (it holds ${this.entries.size} tensors; see names()).`, { tensor: name });
    }
    return e;
  }

  private unsupported(name: string, dtype: string, method: string, accepted: string[], hint: string): CheckpointError {
    return new CheckpointError(
      'UNSUPPORTED_DTYPE',
      this.path,
      `tensor "${name}" is ${dtype}; ${method} accepts ${accepted.join(', ')} (supported dtypes: ${SUPPORTED_DTYPES.join(', ')}).${hint} Convert the checkpoint or read the bytes with readRaw.`,
      { tensor: name },
    );
  }

  private fileHandle(name?: string): FileHandle {
    if (!this.handle) {
      throw new CheckpointError('NOT_A_CHECKPOINT', this.path, `cannot read${name ? ` "${name}"` : ''}: the file was closed; open it again.`, { tensor: name });
    }
    return this.handle;
  }

  private async readInto(name: string, e: HeaderEntry, target: Uint8Array): Promise<void> {
    if (!(await readFully(this.fileHandle(name), target, this.dataStart + e.dataOffsets[0]))) {
      throw new CheckpointError('TRUNCATED', this.path, `file ended while reading "${name}"; it was truncated after it was opened. Re-download it.`, { tensor: name });
    }
    this.bytesRead += target.length;
  }
}
