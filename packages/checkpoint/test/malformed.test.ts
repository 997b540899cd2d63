import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelCheckpoint } from '@scaleot/model';
import { Checkpoint, CheckpointError, SafetensorsFile, writeCheckpoint, writeSafetensors, type CheckpointErrorCode } from '@scaleot/checkpoint';
import { MICRO_CONFIG, familyParameters, validateAgainstConfig, listDir, makeTempDir, microTensors, removeDir, writeRawSafetensors } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  tmp = await makeTempDir();
});
afterAll(async () => {
  await removeDir(tmp);
});

/** Runs `action`, expects a CheckpointError with `code` whose message names `file`; returns it. */
async function expectError(action: () => Promise<unknown>, code: CheckpointErrorCode, file: string, fragment?: RegExp): Promise<CheckpointError> {
  let caught: unknown;
  try {
    await action();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(CheckpointError);
  const err = caught as CheckpointError;
  expect(err.code, err.message).toBe(code);
  expect(err.file).toBe(file);
  expect(err.message).toContain(file);
  expect(err.unrecoverable).toBe(true);
  if (fragment) expect(err.message).toMatch(fragment);
  return err;
}

const f32 = (name: string, begin: number, end: number, shape = [(end - begin) / 4]) => ({ [name]: { dtype: 'F32', shape, data_offsets: [begin, end] } });

interface FileCase {
  name: string;
  code: CheckpointErrorCode;
  build: (path: string) => Promise<void>;
  fragment: RegExp;
  tensor?: string;
}

const fileCases: FileCase[] = [
  { name: 'truncated file (< 8 bytes)', code: 'TRUNCATED', build: (p) => writeFile(p, Buffer.from([1, 2, 3])), fragment: /3 bytes/ },
  { name: 'empty file', code: 'TRUNCATED', build: (p) => writeFile(p, Buffer.alloc(0)), fragment: /0 bytes/ },
  { name: 'header length past end of file', code: 'HEADER_LENGTH', build: (p) => writeRawSafetensors(p, '{}', 0, 64n), fragment: /past the end/ },
  { name: 'header length over 100 MB', code: 'HEADER_TOO_LARGE', build: (p) => writeRawSafetensors(p, '{}', 0, 2n ** 62n), fragment: /100000000/ },
  { name: 'non-JSON header', code: 'BAD_HEADER_JSON', build: (p) => writeRawSafetensors(p, '{"a": {"dtype": '), fragment: /not valid JSON/ },
  { name: 'header not an object', code: 'BAD_HEADER_JSON', build: (p) => writeRawSafetensors(p, '[1, 2]'), fragment: /does not start with "\{"/ },
  { name: 'header not UTF-8', code: 'BAD_HEADER_JSON', build: (p) => writeRawSafetensors(p, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), fragment: /not valid UTF-8/ },
  {
    name: 'overlapping offsets',
    code: 'OVERLAP',
    build: (p) => writeRawSafetensors(p, { ...f32('a', 0, 8), ...f32('b', 4, 12) }, 12),
    fragment: /"b".*overlaps.*"a"/,
    tensor: 'b',
  },
  {
    name: 'hole between tensors',
    code: 'HOLE',
    build: (p) => writeRawSafetensors(p, { ...f32('a', 0, 8), ...f32('b', 12, 16) }, 16),
    fragment: /4 unused bytes.*"b"/,
    tensor: 'b',
  },
  { name: 'trailing bytes', code: 'HOLE', build: (p) => writeRawSafetensors(p, f32('a', 0, 8), 10), fragment: /2 trailing bytes/ },
  {
    name: 'dtype × shape vs byte length mismatch',
    code: 'BYTE_LENGTH_MISMATCH',
    build: (p) => writeRawSafetensors(p, f32('w', 0, 12, [2, 2]), 12),
    fragment: /"w".*needs 16 bytes.*span 12/,
    tensor: 'w',
  },
  { name: 'offsets out of bounds', code: 'OUT_OF_BOUNDS', build: (p) => writeRawSafetensors(p, f32('w', 0, 16), 8), fragment: /"w".*past the end/, tensor: 'w' },
  {
    name: 'unknown dtype',
    code: 'UNSUPPORTED_DTYPE',
    build: (p) => writeRawSafetensors(p, { w: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, 4),
    fragment: /"F33".*F32, F16, BF16, I64/,
    tensor: 'w',
  },
  {
    name: 'duplicate tensor name',
    code: 'DUPLICATE_TENSOR',
    build: (p) => writeRawSafetensors(p, `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
    fragment: /"w" appears twice/,
    tensor: 'w',
  },
  {
    name: 'duplicate field inside an entry',
    code: 'BAD_ENTRY',
    build: (p) => writeRawSafetensors(p, `{"w":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}`, 4),
    fragment: /"shape" twice/,
    tensor: 'w',
  },
  {
    name: 'negative shape',
    code: 'BAD_ENTRY',
    build: (p) => writeRawSafetensors(p, { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4),
    fragment: /non-negative/,
    tensor: 'w',
  },
  {
    name: 'non-string metadata',
    code: 'BAD_ENTRY',
    build: (p) => writeRawSafetensors(p, { __metadata__: { epoch: 3 }, ...f32('w', 0, 4) }, 4),
    fragment: /__metadata__.*"epoch"/,
  },
];

describe('malformed safetensors files', () => {
  it.each(fileCases)('$name → $code', async ({ code, build, fragment, tensor }) => {
    const dir = await makeTempDir();
    try {
      const path = join(dir, 'model.safetensors');
      await build(path);
      const err = await expectError(() => SafetensorsFile.open(path), code, path, fragment);
      if (tensor) expect(err.tensor).toBe(tensor);
      expect(await listDir(dir)).toEqual(['model.safetensors']);
    } finally {
      await removeDir(dir);
    }
  });

  it('does not leak file handles on failed opens', async () => {
    if (process.platform !== 'linux') return;
    const path = join(tmp, 'leak.safetensors');
    await writeRawSafetensors(path, { ...f32('a', 0, 8), ...f32('b', 4, 12) }, 12);
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) await expect(SafetensorsFile.open(path)).rejects.toBeInstanceOf(CheckpointError);
    expect(readdirSync('/proc/self/fd').length).toBeLessThan(before + 5);
  });

  it('rejects a missing file and reads after close', async () => {
    const missing = join(tmp, 'nope.safetensors');
    await expectError(() => SafetensorsFile.open(missing), 'MISSING_SHARD', missing);
    const path = join(tmp, 'closed.safetensors');
    await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
    const file = await SafetensorsFile.open(path);
    await file.close();
    await expectError(() => file.readFloat32('w'), 'NOT_A_CHECKPOINT', path, /closed/);
  });
});

/** A valid micro checkpoint in a fresh dir, optionally sharded. */
async function microCheckpoint(name: string, maxShardBytes?: number): Promise<string> {
  const dir = join(tmp, name);
  await writeCheckpoint(dir, microTensors(), { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG), maxShardBytes });
  return dir;
}

describe('malformed checkpoint directories', () => {
  it('missing shard → MISSING_SHARD naming the shard', async () => {
    const dir = await microCheckpoint('missing-shard', 400);
    const index = JSON.parse(await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'model.safetensors.index.json'), 'utf8')));
    const anyName = Object.keys(index.weight_map)[0];
    index.weight_map[anyName] = 'model-00009-of-00009.safetensors';
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const err = await expectError(() => Checkpoint.open(dir), 'MISSING_SHARD', join(dir, 'model-00009-of-00009.safetensors'), /model\.safetensors\.index\.json/);
    expect(err.tensor).toBe(anyName);
  });

  it.each([
    { label: 'not JSON', content: '{"weight_map": ', fragment: /not valid JSON/ },
    { label: 'no weight_map', content: '{"metadata": {}}', fragment: /no "weight_map"/ },
    { label: 'shard outside the directory', content: '{"weight_map": {"transformer.wte.weight": "../model.safetensors"}}', fragment: /plain file names/ },
    { label: 'tensor not in its shard', content: '{"weight_map": {"transformer.nope": "model-00001-of-00002.safetensors"}}', fragment: /"transformer\.nope".*no shard holds it/ },
  ])('index.json $label → BAD_INDEX', async ({ label, content, fragment }) => {
    const dir = await microCheckpoint(`bad-index-${label.replace(/\W+/g, '-')}`, 1000);
    const index = join(dir, 'model.safetensors.index.json');
    if (label === 'tensor not in its shard') {
      const shards = (await listDir(dir)).filter((f) => f.startsWith('model-'));
      expect(shards.length).toBeGreaterThanOrEqual(2);
      await writeFile(index, content.replace('model-00001-of-00002.safetensors', shards[0]));
    } else {
      await writeFile(index, content);
    }
    await expectError(() => Checkpoint.open(dir), 'BAD_INDEX', index, fragment);
  });

  it('tensor missing for the config → MISSING_TENSOR', async () => {
    const dir = join(tmp, 'missing-tensor');
    await writeCheckpoint(dir, microTensors().filter((t) => t.name !== 'transformer.h.1.ln_2.bias'), { config: MICRO_CONFIG });
    const ckpt = await Checkpoint.open(dir);
    try {
      const err = await expectError(async () => validateAgainstConfig(ckpt), 'MISSING_TENSOR', join(dir, 'model.safetensors'), /"transformer\.h\.1\.ln_2\.bias" \[8\]/);
      expect(err.tensor).toBe('transformer.h.1.ln_2.bias');
      await expectError(() => ckpt.readFloat32('transformer.h.1.ln_2.bias'), 'MISSING_TENSOR', join(dir, 'model.safetensors'));
    } finally {
      await ckpt.close();
    }
  });

  it('wrong shape for the config → SHAPE_MISMATCH naming the shard and tensor', async () => {
    const dir = join(tmp, 'wrong-shape');
    const tensors = microTensors().map((t) => (t.name === 'transformer.h.0.attn.c_attn.weight' ? { ...t, shape: [24, 8] } : t));
    await writeCheckpoint(dir, tensors, { config: MICRO_CONFIG, maxShardBytes: 300 });
    const ckpt = await Checkpoint.open(dir);
    try {
      const file = ckpt.info('transformer.h.0.attn.c_attn.weight').file;
      expect(file).toMatch(/model-\d{5}-of-\d{5}\.safetensors$/);
      const err = await expectError(async () => validateAgainstConfig(ckpt), 'SHAPE_MISMATCH', file, /\[24, 8\].*\[8, 24\]/);
      expect(err.tensor).toBe('transformer.h.0.attn.c_attn.weight');
    } finally {
      await ckpt.close();
    }
  });

  it.each([
    { label: 'unknown model_type', patch: { model_type: 'llama2' }, fragment: /"llama2".*supported model types: gpt2/ },
    { label: 'n_embd not divisible by n_head', patch: { n_embd: 10, n_head: 3 }, fragment: /not divisible by n_head/ },
  ])('bad config.json ($label) → BAD_CONFIG', async ({ label, patch, fragment }) => {
    const dir = await microCheckpoint(`bad-config-${label.replace(/\W+/g, '-')}`);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...MICRO_CONFIG, ...patch }));
    await expectError(() => openModelCheckpoint(dir), 'BAD_CONFIG', join(dir, 'config.json'), fragment);
  });

  it('config.json not JSON → BAD_CONFIG; no config or no weights → NOT_A_CHECKPOINT', async () => {
    const dir = await microCheckpoint('config-not-json');
    await writeFile(join(dir, 'config.json'), '{model_type: gpt2}');
    await expectError(() => Checkpoint.open(dir), 'BAD_CONFIG', join(dir, 'config.json'), /not valid JSON/);
    const empty = join(tmp, 'empty-dir');
    await mkdir(empty);
    await expectError(() => Checkpoint.open(empty), 'NOT_A_CHECKPOINT', join(empty, 'config.json'));
    await writeFile(join(empty, 'config.json'), JSON.stringify(MICRO_CONFIG));
    await expectError(() => Checkpoint.open(empty), 'NOT_A_CHECKPOINT', empty, /neither model\.safetensors nor/);
    await expectError(() => Checkpoint.open(join(tmp, 'does-not-exist')), 'NOT_A_CHECKPOINT', join(tmp, 'does-not-exist'));
  });

  it('a corrupt shard fails Checkpoint.open with the shard named', async () => {
    const dir = await microCheckpoint('corrupt-shard', 400);
    const shard = join(dir, (await listDir(dir)).filter((f) => f.startsWith('model-'))[1]);
    await writeFile(shard, Buffer.from([8, 0, 0]));
    await expectError(() => Checkpoint.open(dir), 'TRUNCATED', shard);
  });
});

describe('writers leave nothing behind on bad input', () => {
  it('writeSafetensors: data length does not match shape', async () => {
    const dir = await makeTempDir();
    try {
      const path = join(dir, 'sub', 'x.safetensors');
      const err = await expectError(
        () => writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array(5) }]),
        'BYTE_LENGTH_MISMATCH',
        path,
        /needs 6 elements.*holds 5/,
      );
      expect(err.tensor).toBe('w');
      await expectError(() => writeSafetensors(path, [{ name: 'w', dtype: 'BF16', shape: [3], data: new Uint8Array(5) }]), 'BYTE_LENGTH_MISMATCH', path, /needs 6 bytes/);
      await expectError(() => writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint16Array(1) }]), 'BAD_ENTRY', path, /Uint16Array cannot be written as F32/);
      await expectError(
        () => writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]),
        'DUPLICATE_TENSOR',
        path,
      );
      await expectError(() => writeSafetensors(path, [{ name: 'w', dtype: 'Q4' as 'F32', shape: [1], data: new Float32Array(1) }]), 'UNSUPPORTED_DTYPE', path);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it.each([
    {
      label: 'bad config',
      tensors: () => microTensors(),
      options: { config: [MICRO_CONFIG] as unknown as Record<string, unknown> },
      code: 'BAD_CONFIG' as const,
      file: (d: string) => join(d, 'config.json'),
    },
    {
      label: 'missing tensor',
      tensors: () => microTensors().slice(1),
      options: { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG), maxShardBytes: 300 },
      code: 'MISSING_TENSOR' as const,
      file: (d: string) => join(d, 'model.safetensors.index.json'),
    },
    {
      label: 'wrong data length',
      tensors: () => microTensors().map((t, i) => (i === 5 ? { ...t, data: new Float32Array(3) } : t)),
      options: { config: MICRO_CONFIG },
      code: 'BYTE_LENGTH_MISMATCH' as const,
      file: (d: string) => join(d, 'model.safetensors'),
    },
  ])('writeCheckpoint: $label → $code, no dir and no temp files', async ({ tensors, options, code, file }) => {
    const parent = await makeTempDir();
    try {
      const dir = join(parent, 'out');
      await expectError(() => writeCheckpoint(dir, tensors(), options), code, file(dir));
      expect(await listDir(parent)).toEqual([]);
    } finally {
      await removeDir(parent);
    }
  });

  it('writeCheckpoint: a bad input does not touch an existing checkpoint', async () => {
    const dir = await microCheckpoint('keep-old');
    const before = await listDir(dir);
    await expect(writeCheckpoint(dir, microTensors().slice(2), { config: MICRO_CONFIG, parameters: familyParameters(MICRO_CONFIG) })).rejects.toMatchObject({ code: 'MISSING_TENSOR' });
    await expect(writeCheckpoint(dir, microTensors(), { config: MICRO_CONFIG, extraFiles: ['relative/tokenizer.json'] })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(writeCheckpoint(dir, microTensors(), { config: MICRO_CONFIG, extraFiles: [join(tmp, 'no-such-file.json')] })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await listDir(dir)).toEqual(before);
    expect((await listDir(tmp)).filter((f) => f.startsWith('.keep-old'))).toEqual([]);
    const ckpt = await Checkpoint.open(dir);
    expect(validateAgainstConfig(ckpt).size).toBe(microTensors().length);
    await ckpt.close();
  });
});
