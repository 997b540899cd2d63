import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, SafetensorsFile, elementCount, writeCheckpoint, type WriteTensor } from '@scaleot/checkpoint';
import { parseModelConfig } from '@scaleot/model';
import { SMALL, TINY, listDir, makeTempDir, refHalfToNumber, removeDir, familyParameters, validateAgainstConfig } from './helpers.js';

describe.each([
  { label: 'tiny (F32, single file)', dir: TINY, dtype: 'F32', d: 128, shards: 1 },
  { label: 'small (F16, 3 shards + index)', dir: SMALL, dtype: 'F16', d: 256, shards: 3 },
])('fixture $label', ({ dir, dtype, d, shards }) => {
  let ckpt: Checkpoint;
  beforeAll(async () => {
    ckpt = await Checkpoint.open(dir);
  });
  afterAll(async () => {
    await ckpt.close();
  });

  it('parses the config', () => {
    expect(parseModelConfig(ckpt.rawConfig, ckpt.configFile)).toMatchObject({ modelType: 'gpt2', hiddenSize: d, nLayer: 12, vocabSize: 4096, intermediateSize: 4 * d, tieWordEmbeddings: true });
    expect(ckpt.shardFiles()).toHaveLength(shards);
  });

  it('validates: names and shapes equal the config expectations', () => {
    const map = validateAgainstConfig(ckpt);
    const specs = familyParameters(ckpt.rawConfig).specs;
    expect(specs).toHaveLength(2 + 12 * 12 + 2);
    expect([...map.keys()].sort()).toEqual(specs.map((s) => s.name).sort());
    expect(ckpt.names().sort()).toEqual(specs.map((s) => s.name).sort());
    for (const s of specs) {
      expect(map.get(s.name)).toBe(s.name);
      expect(ckpt.info(s.name).shape).toEqual(s.shape);
      expect(ckpt.info(s.name).dtype).toBe(dtype);
    }
  });

  it('reads every tensor as finite float32 of the right length', async () => {
    let total = 0;
    for (const name of ckpt.names()) {
      const values = await ckpt.readFloat32(name);
      expect(values.length).toBe(elementCount(ckpt.info(name).shape));
      let finite = true;
      for (const v of values) if (!Number.isFinite(v)) finite = false;
      expect(finite, name).toBe(true);
      total += values.length;
    }
    expect(total).toBe(dtype === 'F32' ? 2_936_576 : 10_657_280);
    expect(ckpt.totalElements()).toBe(total);
  });

  it('reads raw bytes equal to the file bytes at the header offsets', async () => {
    const name = 'transformer.h.11.mlp.c_proj.bias';
    const info = ckpt.info(name);
    const file = await readFile(info.file);
    const headerLength = Number(file.readBigUInt64LE(0));
    const expected = file.subarray(8 + headerLength + info.dataOffsets[0], 8 + headerLength + info.dataOffsets[1]);
    expect(Buffer.from(await ckpt.readRaw(name)).equals(expected)).toBe(true);
  });

  it('accepts the bare (unprefixed) name form for lookups once validated against the family', async () => {
    validateAgainstConfig(ckpt);
    expect(ckpt.has('h.3.ln_1.weight')).toBe(true);
    expect(ckpt.has('h.99.ln_1.weight')).toBe(false);
    expect(await ckpt.readFloat32('wpe.weight')).toEqual(await ckpt.readFloat32('transformer.wpe.weight'));
  });
});

describe('F16 decode on the small fixture', () => {
  it('equals a float64 reference decoder bit for bit on several tensors', async () => {
    const ckpt = await Checkpoint.open(SMALL);
    try {
      for (const name of ['transformer.wte.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.ln_f.weight', 'transformer.h.7.mlp.c_fc.bias']) {
        const raw = await ckpt.readRaw(name);
        const bits = new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
        const values = await ckpt.readFloat32(name);
        let mismatches = 0;
        for (let i = 0; i < bits.length; i++) if (!Object.is(values[i], refHalfToNumber(bits[i]))) mismatches++;
        expect(mismatches, name).toBe(0);
      }
      // LayerNorm gains of a trained model sit around 1.
      const lnf = await ckpt.readFloat32('transformer.ln_f.weight');
      const mean = lnf.reduce((a, b) => a + b, 0) / lnf.length;
      expect(mean).toBeGreaterThan(0.2);
      expect(mean).toBeLessThan(5);
    } finally {
      await ckpt.close();
    }
  });

  it('SafetensorsFile exposes the metadata and per-file names of a shard', async () => {
    const shard = await SafetensorsFile.open(join(SMALL, 'model-00003-of-00003.safetensors'));
    try {
      expect(shard.metadata).toEqual({ format: 'pt' });
      expect(shard.has('transformer.ln_f.bias')).toBe(true);
      expect(shard.has('transformer.wte.weight')).toBe(false);
      expect(shard.info('transformer.ln_f.bias')).toMatchObject({ dtype: 'F16', shape: [256] });
    } finally {
      await shard.close();
    }
  });
});

describe('re-writing the small fixture', () => {
  let out: string;
  beforeAll(async () => {
    out = await makeTempDir();
  });
  afterAll(async () => {
    await removeDir(out);
  });

  it('reproduces the transformers shards byte for byte (F32 values → F16, 10 MB shards)', async () => {
    const src = await Checkpoint.open(SMALL);
    const tensors: WriteTensor[] = [];
    for (const name of src.names()) {
      const info = src.info(name);
      tensors.push({ name, dtype: 'F16', shape: info.shape, data: await src.readFloat32(name) });
    }
    const target = join(out, 'small');
    await writeCheckpoint(target, tensors, {
      config: src.rawConfig,
      parameters: familyParameters(src.rawConfig),
      maxShardBytes: 10_000_000,
      extraFiles: [join(SMALL, 'tokenizer.json'), join(SMALL, 'tokenizer_config.json')],
    });
    expect(await listDir(target)).toEqual([
      'config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    for (const shard of src.shardFiles()) {
      const name = shard.slice(SMALL.length + 1);
      expect((await readFile(join(target, name))).equals(await readFile(shard)), name).toBe(true);
    }
    const index = JSON.parse(await readFile(join(target, 'model.safetensors.index.json'), 'utf8'));
    const original = JSON.parse(await readFile(join(SMALL, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).toEqual(original.weight_map);
    expect(index.metadata.total_size).toBe(original.metadata.total_size);
    expect((await readFile(join(target, 'tokenizer.json'))).equals(await readFile(join(SMALL, 'tokenizer.json')))).toBe(true);

    const back = await Checkpoint.open(target);
    try {
      expect(validateAgainstConfig(back).size).toBe(148);
      for (const name of src.names()) {
        expect(Buffer.from(await back.readRaw(name)).equals(Buffer.from(await src.readRaw(name))), name).toBe(true);
      }
    } finally {
      await back.close();
      await src.close();
    }
  });
});
