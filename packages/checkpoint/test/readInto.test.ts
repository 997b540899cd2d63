import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '@scaleot/checkpoint';
import { makeTempDir, removeDir, rng } from './helpers.js';

// readFloat32Into widens F16/BF16 in place inside the caller's buffer (what loadModel reuses for every
// tensor on wasm): it must give readFloat32's values bit for bit, for any length and offset.
let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('read-into');
});

afterAll(async () => {
  await removeDir(dir);
});

describe('readFloat32Into', () => {
  it('equals readFloat32 bit for bit (F32, F16, BF16; odd lengths; a reused, larger, offset buffer)', async () => {
    const r = rng(5);
    const values = (n: number) => Float32Array.from({ length: n }, () => (r() - 0.5) * 1e3);
    const tensors = [
      { name: 'a', dtype: 'F32' as const, shape: [7, 3], data: values(21) },
      { name: 'b', dtype: 'F16' as const, shape: [1001], data: values(1001) },
      { name: 'c', dtype: 'BF16' as const, shape: [13, 17], data: values(221) },
      { name: 'd', dtype: 'BF16' as const, shape: [1], data: values(1) },
    ];
    const path = join(dir, 'mixed.safetensors');
    await writeSafetensors(path, tensors);
    const file = await SafetensorsFile.open(path);
    try {
      const backing = new Float32Array(2000).fill(Number.NaN);
      const scratch = backing.subarray(3); // an offset view, longer than any tensor
      for (const t of tensors) {
        const want = await file.readFloat32(t.name);
        const got = await file.readFloat32Into(t.name, scratch);
        expect(got.length).toBe(want.length);
        expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
      }
      await expect(file.readFloat32Into('b', new Float32Array(10))).rejects.toMatchObject({ code: 'BYTE_LENGTH_MISMATCH' });
    } finally {
      await file.close();
    }
  });
});
