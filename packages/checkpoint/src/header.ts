import { CheckpointError } from './CheckpointError.js';
import { byteLengthOf, isSafetensorsDType, SUPPORTED_DTYPES, type SafetensorsDType } from './dtypes.js';
import { findDuplicateKey } from './jsonDuplicates.js';

/** The reference implementation's limit; a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export const METADATA_KEY = '__metadata__';

const REEXPORT = 'Re-download the file, or re-export it with a safetensors writer (safetensors.torch.save_file, save_pretrained).';

export interface HeaderEntry {
  dtype: SafetensorsDType;
  shape: number[];
  dataOffsets: [number, number];
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In storage (data offset) order. */
  tensors: Map<string, HeaderEntry>;
}

/**
 * Checks the 8-byte length prefix against the file size; returns the header length.
 * `fileSize` is the size of the whole file, `prefix` its first 8 bytes (or fewer when shorter).
 */
export function checkHeaderLength(file: string, fileSize: number, prefix: Uint8Array): number {
  if (fileSize < 8) {
    throw new CheckpointError(
      'TRUNCATED',
      file,
      `file is ${fileSize} bytes, shorter than the 8-byte header length every safetensors file starts with. ${REEXPORT}`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      'HEADER_TOO_LARGE',
      file,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit of the safetensors format; the file is corrupt or not safetensors. ${REEXPORT}`,
    );
  }
  if (n + 8n > BigInt(fileSize)) {
    throw new CheckpointError(
      'HEADER_LENGTH',
      file,
      `header length ${n} runs past the end of the ${fileSize}-byte file (truncated download or not a safetensors file). ${REEXPORT}`,
    );
  }
  return Number(n);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function badEntry(file: string, name: string, what: string): CheckpointError {
  return new CheckpointError(
    'BAD_ENTRY',
    file,
    `header entry "${name}" ${what}; each entry must be {"dtype": string, "shape": [non-negative ints], "data_offsets": [begin, end]}. ${REEXPORT}`,
    { tensor: name },
  );
}

/**
 * Parses and validates a header as the safetensors reference does: JSON object, string-only
 * `__metadata__`, well-formed entries, byte lengths that match dtype × shape, and entries that
 * tile the data buffer (`dataLength` bytes) exactly.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, dataLength: number): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (cause) {
    throw new CheckpointError('BAD_HEADER_JSON', file, `header is not valid UTF-8. ${REEXPORT}`, { cause });
  }
  if (!text.startsWith('{')) {
    throw new CheckpointError(
      'BAD_HEADER_JSON',
      file,
      `header does not start with "{" (it starts with ${JSON.stringify(text.slice(0, 16))}); not a safetensors file. ${REEXPORT}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError('BAD_HEADER_JSON', file, `header is not valid JSON (${(cause as Error).message}). ${REEXPORT}`, { cause });
  }
  if (!isPlainObject(parsed)) {
    throw new CheckpointError('BAD_HEADER_JSON', file, `header JSON is not an object. ${REEXPORT}`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    if (dup.path.length === 0) {
      throw new CheckpointError(
        'DUPLICATE_TENSOR',
        file,
        `tensor "${dup.key}" appears twice in the header; names must be unique. ${REEXPORT}`,
        { tensor: dup.key },
      );
    }
    throw badEntry(file, dup.path[0], `has the field "${[...dup.path.slice(1), dup.key].join('.')}" twice`);
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, HeaderEntry>();
  for (const [name, value] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (value === null) continue;
      if (!isPlainObject(value)) throw badEntry(file, name, 'is not an object of strings');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw badEntry(file, name, `has a non-string value for "${k}" (metadata is string → string only)`);
        metadata[k] = v;
      }
      continue;
    }
    if (!isPlainObject(value)) throw badEntry(file, name, 'is not an object');
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string') throw badEntry(file, name, 'has no string "dtype"');
    if (!Array.isArray(shape) || !shape.every(isIndex)) throw badEntry(file, name, `has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      throw badEntry(file, name, `has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw badEntry(file, name, `has data_offsets [${begin}, ${end}] with end before begin`);
    if (!isSafetensorsDType(dtype)) {
      throw new CheckpointError(
        'UNSUPPORTED_DTYPE',
        file,
        `tensor "${name}" has dtype "${dtype}", which is not a safetensors dtype. Convert it to one of ${SUPPORTED_DTYPES.join(', ')} (the dtypes this project reads) before loading.`,
        { tensor: name },
      );
    }
    const expected = byteLengthOf(dtype, shape as number[]);
    if (expected === undefined || expected !== end - begin) {
      throw new CheckpointError(
        'BYTE_LENGTH_MISMATCH',
        file,
        `tensor "${name}" is ${dtype} with shape [${shape.join(', ')}], which needs ${expected ?? 'a non-integral number of'} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}. ${REEXPORT}`,
        { tensor: name },
      );
    }
    if (end > dataLength) {
      throw new CheckpointError(
        'OUT_OF_BOUNDS',
        file,
        `tensor "${name}" has data_offsets [${begin}, ${end}] past the end of the ${dataLength}-byte data buffer (truncated file?). ${REEXPORT}`,
        { tensor: name },
      );
    }
    tensors.set(name, { dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }

  const byOffset = [...tensors].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let cursor = 0;
  let previous = '';
  for (const [name, { dataOffsets: [begin, end] }] of byOffset) {
    if (begin < cursor) {
      throw new CheckpointError(
        'OVERLAP',
        file,
        `tensor "${name}" (bytes ${begin}..${end}) overlaps tensor "${previous}" (which ends at ${cursor}); every byte must belong to one tensor. ${REEXPORT}`,
        { tensor: name },
      );
    }
    if (begin > cursor) {
      throw new CheckpointError(
        'HOLE',
        file,
        `${begin - cursor} unused bytes (${cursor}..${begin}) before tensor "${name}"; tensors must cover the data buffer with no gaps. ${REEXPORT}`,
        { tensor: name },
      );
    }
    cursor = end;
    previous = name;
  }
  if (cursor !== dataLength) {
    throw new CheckpointError(
      'HOLE',
      file,
      `${dataLength - cursor} trailing bytes after the last tensor${previous ? ` ("${previous}")` : ''}; tensors must cover the data buffer exactly (file appended to or offsets wrong). ${REEXPORT}`,
      previous ? { tensor: previous } : {},
    );
  }
  // Storage order, not JSON key order: JS objects enumerate integer-like keys first.
  return { metadata, tensors: new Map(byOffset) };
}
