import { SafetensorsFile } from '@scaleot/checkpoint';

/** A float32 tensor to store. */
export interface F32Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * A float32 safetensors file as byte chunks (header length, padded JSON header, data), for artifact
 * directories that are written atomically as a whole. Tensors are stored in the given order.
 */
export function encodeF32Safetensors(tensors: readonly F32Tensor[], metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // The data section starts 8-byte aligned (what the reference writer does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const chunks: Uint8Array[] = [len, headerBytes];
  for (const t of tensors) chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice());
  return chunks;
}

/** Every tensor of a safetensors file as float32, by name. */
export async function readAllFloat32(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const file = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const name of file.names()) out.set(name, { shape: file.info(name).shape.slice(), data: await file.readFloat32(name) });
    return out;
  } finally {
    await file.close();
  }
}
