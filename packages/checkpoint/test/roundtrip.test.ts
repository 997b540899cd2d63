import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Checkpoint,
  CheckpointError,
  SafetensorsFile,
  float32ToBfloat16,
  float32ToFloat16,
  writeCheckpoint,
  writeSafetensors,
  type WriteTensor,
} from '@scaleot/checkpoint';
import { MICRO_CONFIG, TINY, listDir, makeTempDir, microTensors, removeDir, rng, writeRawSafetensors, familyParameters, validateAgainstConfig } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  tmp = await makeTempDir();
});
afterAll(async () => {
  await removeDir(tmp);
});

function randomFloats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * 10 ** Math.floor(r() * 8 - 4);
  return out;
}

const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

describe('writeSafetensors → SafetensorsFile', () => {
  it('round-trips F32, F16, BF16 and I64 bit-exactly, with metadata and a padded header', async () => {
    const f32 = randomFloats(3 * 5, 1);
    const f16Values = randomFloats(7, 2);
    const bf16Bits = new Uint16Array([0x3f80, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x8000]);
    const i64 = new BigInt64Array([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n]);
    const path = join(tmp, 'mixed.safetensors');
    await writeSafetensors(
      path,
      [
        { name: 'b.f16', dtype: 'F16', shape: [7], data: f16Values },
        { name: 'a.f32', dtype: 'F32', shape: [3, 5], data: f32 },
        { name: 'c.bf16', dtype: 'BF16', shape: [2, 3], data: bf16Bits },
        { name: 'd.i64', dtype: 'I64', shape: [5], data: i64 },
        { name: 'e.scalar', dtype: 'F32', shape: [], data: new Float32Array([42.5]) },
        { name: 'f.empty', dtype: 'F16', shape: [0, 4], data: new Float32Array(0) },
      ],
      { format: 'pt', note: 'ünïcode ✓' },
    );
    const raw = await readFile(path);
    const headerLength = Number(raw.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = raw.subarray(8, 8 + headerLength).toString('utf8');
    expect(header.endsWith('}') || /} +$/.test(header)).toBe(true);

    const file = await SafetensorsFile.open(path);
    try {
      expect(file.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
      expect(file.names().sort()).toEqual(['a.f32', 'b.f16', 'c.bf16', 'd.i64', 'e.scalar', 'f.empty']);
      expect(bytes(await file.readRaw('a.f32')).equals(bytes(f32))).toBe(true);
      expect(await file.readFloat32('a.f32')).toEqual(f32);
      expect(bytes(await file.readRaw('b.f16')).equals(bytes(float32ToFloat16(f16Values)))).toBe(true);
      expect(bytes(await file.readRaw('c.bf16')).equals(bytes(bf16Bits))).toBe(true);
      expect(bytes(await file.readRaw('d.i64')).equals(bytes(i64))).toBe(true);
      expect(await file.readInt64('d.i64')).toEqual(i64);
      expect(Array.from(await file.readFloat32('e.scalar'))).toEqual([42.5]);
      expect(file.info('e.scalar').shape).toEqual([]);
      expect((await file.readFloat32('f.empty')).length).toBe(0);
      // Every tensor sits at a multiple of its element size (larger dtypes first).
      for (const name of file.names()) {
        const { dtype, dataOffsets } = file.info(name);
        const size = { F32: 4, F16: 2, BF16: 2, I64: 8 }[dtype as 'F32'];
        expect(dataOffsets[0] % size, name).toBe(0);
      }
      // BF16 decode of the stored bits, and the I64 refusal.
      const bf = await file.readFloat32('c.bf16');
      expect([bf[0], bf[1], bf[2]]).toEqual([1, Infinity, -Infinity]);
      expect(Number.isNaN(bf[3])).toBe(true);
      await expect(file.readFloat32('d.i64')).rejects.toMatchObject({ code: 'UNSUPPORTED_DTYPE' });
      await expect(file.readInt64('a.f32')).rejects.toMatchObject({ code: 'UNSUPPORTED_DTYPE' });
      expect(() => file.info('nope')).toThrow(CheckpointError);
    } finally {
      await file.close();
    }
  });

  it('converts Float32Array to F16/BF16 with round to nearest even', async () => {
    const values = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -Infinity]);
    const path = join(tmp, 'rounding.safetensors');
    await writeSafetensors(path, [
      { name: 'h', dtype: 'F16', shape: [7], data: values },
      { name: 'b', dtype: 'BF16', shape: [7], data: values },
    ]);
    const file = await SafetensorsFile.open(path);
    try {
      const h = new Uint16Array((await file.readRaw('h')).buffer);
      // F16 ties at 1 + 2^-11 (→ even 1.0) and 1 + 3·2^-11 (→ even 1 + 2^-9); 65520 rounds to Inf.
      expect(Array.from(h.subarray(0, 5))).toEqual([0x3c00, 0x3c02, 0x7c00, 0x3c04, 0x3c0c]);
      expect(h[6]).toBe(0xfc00);
      expect(Number.isNaN((await file.readFloat32('h'))[5])).toBe(true);
      expect(Array.from(new Uint16Array((await file.readRaw('b')).buffer))).toEqual(Array.from(float32ToBfloat16(values)));
      const b = await file.readFloat32('b');
      // BF16 ties at 1 + 2^-8 (→ 1) and 1 + 3·2^-8 (→ 1 + 2^-6).
      expect([b[3], b[4]]).toEqual([1, 1 + 2 ** -6]);
    } finally {
      await file.close();
    }
  });

  it('orders one-dtype tensors by name and keeps integer-like names in place', async () => {
    const path = join(tmp, 'order.safetensors');
    await writeSafetensors(path, ['b', '10', 'a', '2'].map((name) => ({ name, dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) })));
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.names()).toEqual(['10', '2', 'a', 'b']);
      expect(file.info('2').dataOffsets).toEqual([4, 8]);
    } finally {
      await file.close();
    }
  });

  it('reads F32 and F16 tensors stored at unaligned offsets', async () => {
    // A U8 tensor of 3 bytes first pushes the next tensors to odd offsets: legal for a reader.
    const f32 = new Float32Array([1.5, -2.25, 3e-7]);
    const f16 = float32ToFloat16(new Float32Array([0.5, -1]));
    const data = Buffer.concat([Buffer.from([1, 2, 3]), bytes(f32), bytes(f16)]);
    const path = join(tmp, 'unaligned.safetensors');
    await writeRawSafetensors(
      path,
      {
        a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
        b: { dtype: 'F32', shape: [3], data_offsets: [3, 15] },
        c: { dtype: 'F16', shape: [2], data_offsets: [15, 19] },
      },
      data,
    );
    const file = await SafetensorsFile.open(path);
    try {
      expect(await file.readFloat32('b')).toEqual(f32);
      expect(Array.from(await file.readFloat32('c'))).toEqual([0.5, -1]);
      expect(Array.from(await file.readRaw('a'))).toEqual([1, 2, 3]);
      // Valid but undecodable dtypes fail only when decoded.
      await expect(file.readFloat32('a')).rejects.toMatchObject({ code: 'UNSUPPORTED_DTYPE', file: path });
    } finally {
      await file.close();
    }
  });

  it('copies raw bytes of any safetensors dtype', async () => {
    const path = join(tmp, 'raw.safetensors');
    await writeSafetensors(path, [{ name: 'mask', dtype: 'BOOL', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) }]);
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.info('mask').dtype).toBe('BOOL');
      expect(Array.from(await file.readRaw('mask'))).toEqual([1, 0, 0, 1]);
    } finally {
      await file.close();
    }
  });
});

describe('writeCheckpoint → Checkpoint', () => {
  it('writes one model.safetensors below the shard limit, with format metadata', async () => {
    const dir = join(tmp, 'single');
    const tensors = microTensors();
    await writeCheckpoint(dir, tensors, { config: MICRO_CONFIG, extraFiles: [join(TINY, 'tokenizer.json')] });
    expect(await listDir(dir)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toEqual(MICRO_CONFIG);
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(validateAgainstConfig(ckpt).size).toBe(tensors.length);
      const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      expect(file.metadata).toEqual({ format: 'pt' });
      await file.close();
      for (const t of tensors) expect(await ckpt.readFloat32(t.name)).toEqual(t.data);
    } finally {
      await ckpt.close();
    }
  });

  it('shards by maxShardBytes and reopens with identical tensors', async () => {
    const dir = join(tmp, 'sharded');
    const tensors = microTensors(MICRO_CONFIG, 3).map((t) => ({ ...t, dtype: 'BF16' as const }));
    await writeCheckpoint(dir, tensors, { config: MICRO_CONFIG, maxShardBytes: 600 });
    const files = await listDir(dir);
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    expect(files).toContain('model.safetensors.index.json');
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(tensors.map((t) => t.name).sort());
    expect(index.metadata.total_size).toBe(tensors.reduce((s, t) => s + (t.data as Float32Array).length * 2, 0));
    // wte (16×8 BF16 = 256 bytes) + wpe (128) fit together; a shard never exceeds the limit unless it holds one tensor.
    for (const shard of shards) {
      const f = await SafetensorsFile.open(join(dir, shard));
      const size = f.names().reduce((s, n) => s + f.info(n).dataOffsets[1] - f.info(n).dataOffsets[0], 0);
      expect(size <= 600 || f.names().length === 1).toBe(true);
      await f.close();
    }
    const ckpt = await Checkpoint.open(dir);
    try {
      validateAgainstConfig(ckpt);
      for (const t of tensors) {
        expect(Buffer.from(await ckpt.readRaw(t.name)).equals(bytes(float32ToBfloat16(t.data as Float32Array))), t.name).toBe(true);
      }
    } finally {
      await ckpt.close();
    }
  });

  it('accepts bare names, ignores HF attn buffers, checks a stored tied lm_head', async () => {
    const dir = join(tmp, 'bare');
    const tensors: WriteTensor[] = microTensors().map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
    tensors.push({ name: 'h.0.attn.bias', dtype: 'F32', shape: [1, 1, 8, 8], data: new Float32Array(64) });
    tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [16, 8], data: new Float32Array(128) });
    await writeCheckpoint(dir, tensors, { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG) });
    const ckpt = await Checkpoint.open(dir);
    try {
      const map = validateAgainstConfig(ckpt);
      expect(map.get('transformer.h.1.mlp.c_fc.weight')).toBe('h.1.mlp.c_fc.weight');
      expect(map.get('lm_head.weight')).toBe('lm_head.weight');
      expect(map.has('transformer.h.0.attn.bias')).toBe(false);
      expect(ckpt.info('transformer.wte.weight').name).toBe('wte.weight');
    } finally {
      await ckpt.close();
    }
    await expect(
      writeCheckpoint(join(tmp, 'bad-head'), [...microTensors(), { name: 'lm_head.weight', dtype: 'F32', shape: [8, 16], data: new Float32Array(128) }], { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG) }),
    ).rejects.toMatchObject({ code: 'SHAPE_MISMATCH', tensor: 'lm_head.weight' });
  });

  it('replaces an existing checkpoint in place and leaves no temp dirs', async () => {
    const parent = join(tmp, 'replace');
    const dir = join(parent, 'model');
    await writeCheckpoint(dir, microTensors(MICRO_CONFIG, 1), { config: MICRO_CONFIG, maxShardBytes: 500 });
    const second = microTensors(MICRO_CONFIG, 2);
    await writeCheckpoint(dir, second, { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG) });
    expect(await listDir(parent)).toEqual(['model']);
    expect(await listDir(dir)).toEqual(['config.json', 'model.safetensors']);
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(await ckpt.readFloat32('transformer.wte.weight')).toEqual(second[0].data);
    } finally {
      await ckpt.close();
    }
  });

  it('refuses to replace a directory that is not a checkpoint', async () => {
    const dir = join(tmp, 'precious');
    await mkdir(dir);
    await writeFile(join(dir, 'thesis.tex'), 'do not delete');
    await expect(writeCheckpoint(dir, microTensors(), { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG) })).rejects.toMatchObject({ code: 'NOT_A_CHECKPOINT', file: dir });
    expect(await listDir(dir)).toEqual(['thesis.tex']);
    expect((await listDir(tmp)).filter((f) => f.startsWith('.precious'))).toEqual([]);
  });
});
