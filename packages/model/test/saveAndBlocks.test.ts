import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '@scaleot/checkpoint';
import { IdentityBlock, ModelError, createModel, loadModel, useBackend, type BlockModule } from '@scaleot/model';
import { modelDir } from './fixtures.js';
import { idsTensor, microConfig, randomIds, randomModel, snapshot } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  await useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'scaleot-model-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('save → load', () => {
  it('round-trips the tiny fixture bit-exactly in F32 under the original names, logits equal', async () => {
    const model = await loadModel(modelDir('tiny'));
    const dir = join(tmp, 'tiny-f32');
    await model.save(dir, { extraFiles: [join(modelDir('tiny'), 'tokenizer.json')] });
    const original = await Checkpoint.open(modelDir('tiny'));
    const saved = await Checkpoint.open(dir);
    expect(saved.names().sort()).toEqual(original.names().filter((n) => !n.endsWith('.attn.bias') && !n.endsWith('.attn.masked_bias')).sort());
    expect(saved.has('lm_head.weight')).toBe(false);
    for (const name of saved.names()) {
      expect(saved.info(name).dtype).toBe('F32');
      expect(Buffer.from(await saved.readRaw(name)).equals(Buffer.from(await original.readRaw(name))), name).toBe(true);
    }
    await original.close();
    await saved.close();
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const originalConfig = JSON.parse(await readFile(join(modelDir('tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual(originalConfig);
    await expect(readFile(join(dir, 'tokenizer.json'), 'utf8')).resolves.toContain('"model"');

    const reloaded = await loadModel(dir);
    const ids = idsTensor([[0, 5, 17, 300, 4095, 12, 9, 1]]);
    const a = model.logits(ids);
    const b = reloaded.logits(ids);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([ids, a, b]);
    model.dispose();
    reloaded.dispose();
  });

  it('re-saves the sharded F16 small fixture as F16 with identical bits; BF16 reloads within bf16 rounding', async () => {
    const model = await loadModel(modelDir('small'));
    const dir = join(tmp, 'small-f16');
    await model.save(dir, { dtype: 'F16', maxShardBytes: 8 << 20 });
    const original = await Checkpoint.open(modelDir('small'));
    const saved = await Checkpoint.open(dir);
    expect(saved.shardFiles().length).toBeGreaterThan(1);
    for (const name of saved.names()) {
      expect(saved.info(name).dtype).toBe('F16');
      expect(Buffer.from(await saved.readRaw(name)).equals(Buffer.from(await original.readRaw(name))), name).toBe(true);
    }
    await original.close();
    await saved.close();
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.dtype ?? config.torch_dtype).toBe('float16');

    const bfDir = join(tmp, 'small-bf16');
    await model.save(bfDir, { dtype: 'BF16' });
    const bf = await loadModel(bfDir);
    const want = await snapshot(model);
    for (const [name, w] of await snapshot(bf)) {
      const ref = want.get(name)!;
      for (let i = 0; i < w.length; i += 97) expect(Math.abs(w[i] - ref[i])).toBeLessThanOrEqual(Math.abs(ref[i]) * 2 ** -8 + 1e-30);
    }
    bf.dispose();
    model.dispose();
  });
});

describe('block list', () => {
  it('removing a block changes the logits; an identity in its place equals removing it', () => {
    const config = microConfig();
    const { model } = randomModel(config, 8);
    const ids = idsTensor(randomIds(2, 9, config.vocabSize, 1));
    const full = model.logits(ids);
    const removed = model.blocks.splice(1, 1)[0];
    const without = model.logits(ids);
    model.blocks.splice(1, 0, new IdentityBlock(1));
    const withIdentity = model.logits(ids);
    const diff = tf.max(tf.abs(tf.sub(full, without))).dataSync()[0];
    expect(diff).toBeGreaterThan(1e-2);
    expect(Array.from(withIdentity.dataSync())).toEqual(Array.from(without.dataSync()));
    // Groups follow the list: the identity has no parameters, the removed block's group is gone.
    expect(model.parameterGroups().get('block.1')).toEqual([]);
    expect([...model.namedWeights().keys()].some((n) => n.startsWith('transformer.h.1.'))).toBe(false);
    // Putting the original back restores the original logits exactly.
    model.blocks[1] = removed;
    const restored = model.logits(ids);
    expect(Array.from(restored.dataSync())).toEqual(Array.from(full.dataSync()));
    tf.dispose([ids, full, without, withIdentity, restored]);
    model.dispose();
  });

  it('accepts any BlockModule and hidden() stops after a list position', () => {
    const config = microConfig();
    const { model } = randomModel(config, 9);
    const ids = idsTensor(randomIds(1, 6, config.vocabSize, 2));
    const scale = tf.variable(tf.scalar(2));
    const doubler: BlockModule = {
      kind: 'test.doubler',
      sourceIndex: 0,
      apply: (x) => tf.mul(x, scale) as tf.Tensor3D,
      namedVariables: () => new Map([['test.doubler.scale', scale]]),
      dispose: () => scale.dispose(),
    };
    const h0 = model.hidden(ids, { upToBlock: 0 });
    const emb = model.embed(ids);
    expect(Array.from(h0.dataSync())).toEqual(Array.from(emb.dataSync()));
    const h1 = model.hidden(ids, { upToBlock: 1 });
    const block0 = model.blocks[0];
    model.blocks[0] = doubler;
    const doubled = model.hidden(ids, { upToBlock: 1 });
    expect(Array.from(doubled.dataSync())).toEqual(Array.from(tf.mul(emb, 2).dataSync()));
    expect(model.namedWeights().has('test.doubler.scale')).toBe(true);
    expect(() => model.hidden(ids, { upToBlock: 5 })).toThrow(ModelError);
    model.blocks[0] = block0;
    const again = model.hidden(ids, { upToBlock: 1 });
    expect(Array.from(again.dataSync())).toEqual(Array.from(h1.dataSync()));
    tf.dispose([ids, h0, emb, h1, doubled, again]);
    doubler.dispose();
    model.dispose();
  });

  it('rejects weights that do not fit the config, with typed errors', () => {
    const config = microConfig();
    const { weights } = randomModel(config, 1);
    const wrong = new Map(weights);
    wrong.set('transformer.h.0.attn.c_attn.weight', new Float32Array(5));
    expect(() => createModel(config, wrong)).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
    const missing = new Map(weights);
    missing.delete('transformer.ln_f.bias');
    expect(() => createModel(config, missing)).toThrow(expect.objectContaining({ code: 'MISSING_TENSOR' }));
    const bare = new Map([...weights].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    const m = createModel(config, bare);
    expect(m.namedWeights().has('transformer.h.1.mlp.c_fc.weight')).toBe(true);
    m.dispose();
  });
});
