import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, CheckpointError, writeCheckpoint, type WriteTensor } from '@scaleot/checkpoint';
import { expectedParameters, familyOf, loadModel, parseModelConfig, ropeInverseFrequencies, useBackend, type CausalLM, type LlamaConfig, type OptConfig } from '@scaleot/model';
import { familyDir, familyReference, type FamilyModel } from './familiesFixtures.js';

let tmp: string;
beforeAll(async () => {
  await useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'scaleot-families-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let counter = 0;
function scratch(label: string): string {
  return join(tmp, `${label}-${counter++}`);
}

async function rawConfig(model: FamilyModel): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(familyDir(model), 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** A copy of a fixture dir with config.json replaced. */
async function withConfig(model: FamilyModel, edit: (raw: Record<string, unknown>) => void): Promise<string> {
  const dir = scratch(model);
  await mkdir(dir);
  for (const f of await readdir(familyDir(model))) if (f !== 'config.json') await copyFile(join(familyDir(model), f), join(dir, f));
  const raw = await rawConfig(model);
  edit(raw);
  await writeFile(join(dir, 'config.json'), JSON.stringify(raw));
  return dir;
}

/** The stored tensors of a fixture, raw bytes and dtypes as stored. */
async function storedTensors(model: FamilyModel): Promise<WriteTensor[]> {
  const ckpt = await Checkpoint.open(familyDir(model));
  try {
    const out: WriteTensor[] = [];
    for (const name of ckpt.names()) out.push({ name, dtype: ckpt.info(name).dtype as WriteTensor['dtype'], shape: [...ckpt.info(name).shape], data: await ckpt.readRaw(name) });
    return out;
  } finally {
    await ckpt.close();
  }
}

/** A fixture rewritten (unchecked) with its tensor list edited. */
async function withTensors(model: FamilyModel, edit: (tensors: WriteTensor[]) => WriteTensor[]): Promise<string> {
  const dir = scratch(model);
  await writeCheckpoint(dir, edit(await storedTensors(model)), { config: await rawConfig(model) });
  return dir;
}

async function loadError(dir: string): Promise<CheckpointError> {
  let caught: unknown;
  let model: CausalLM | undefined;
  try {
    model = await loadModel(dir);
  } catch (err) {
    caught = err;
  }
  model?.dispose();
  expect(caught).toBeInstanceOf(CheckpointError);
  return caught as CheckpointError;
}

function logitsOf(model: CausalLM, ids: number[]): Float32Array {
  return tf.tidy(() => model.logits(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync() as Float32Array);
}

const IDS = [5, 17, 300, 4095, 12, 9, 1, 2048, 77, 3];

describe('config errors: BAD_CONFIG naming config.json and the key', () => {
  const cases: Array<{ what: string; model: FamilyModel; edit: (raw: Record<string, unknown>) => void; key: string; message: RegExp }> = [
    { what: 'unknown model_type', model: 'llama', edit: (r) => (r.model_type = 'gptj'), key: 'model_type', message: /"model_type" is "gptj".*supported model types: .*opt.*llama/ },
    { what: 'unsupported rope_scaling type', model: 'llama3', edit: (r) => (r.rope_scaling = { rope_type: 'yarn', factor: 4 }), key: 'rope_scaling', message: /"rope_scaling" has type "yarn".*"linear", "dynamic", "llama3"/ },
    { what: 'unsupported legacy rope_scaling type', model: 'llama', edit: (r) => (r.rope_scaling = { type: 'longrope', factor: 4 }), key: 'rope_scaling', message: /"rope_scaling" has type "longrope"/ },
    { what: 'llama3 rope_scaling without its band factors', model: 'llama3', edit: (r) => delete (r.rope_scaling as Record<string, unknown>).low_freq_factor, key: 'rope_scaling', message: /low_freq_factor/ },
    { what: 'heads not divisible by kv heads', model: 'llama', edit: (r) => (r.num_key_value_heads = 3), key: 'num_key_value_heads', message: /"num_key_value_heads" \(3\) does not divide num_attention_heads \(4\)/ },
    {
      what: 'hidden_size not divisible by heads without head_dim',
      model: 'llama',
      edit: (r) => {
        delete r.head_dim;
        r.num_attention_heads = 6;
      },
      key: 'hidden_size',
      message: /"hidden_size" \(64\) is not divisible by num_attention_heads \(6\) and "head_dim" is absent/,
    },
    { what: 'OPT hidden_size not divisible by heads', model: 'opt', edit: (r) => (r.num_attention_heads = 6), key: 'hidden_size', message: /"hidden_size" \(64\) is not divisible by num_attention_heads \(6\)/ },
    { what: 'OPT activation this build lacks', model: 'opt', edit: (r) => (r.activation_function = 'silu'), key: 'activation_function', message: /"relu", "gelu", "gelu_new"/ },
    { what: 'OPT LayerNorms without affine weights', model: 'opt', edit: (r) => (r.layer_norm_elementwise_affine = false), key: 'layer_norm_elementwise_affine', message: /affine/ },
    { what: 'Mistral sliding window shorter than the context', model: 'llama', edit: (r) => Object.assign(r, { model_type: 'mistral', sliding_window: 128 }), key: 'sliding_window', message: /sliding-window/ },
  ];
  for (const c of cases) {
    it(c.what, async () => {
      const dir = await withConfig(c.model, c.edit);
      const err = await loadError(dir);
      expect(err.code).toBe('BAD_CONFIG');
      expect(err.file).toBe(join(dir, 'config.json'));
      expect(err.tensor).toBe(c.key);
      expect(err.message).toContain(join(dir, 'config.json'));
      expect(err.message).toMatch(c.message);
    });
  }

  it('accepts Mistral (no or long sliding window) and Qwen2 (q/k/v biases) as LLaMA shapes', async () => {
    const base = await rawConfig('llama');
    const mistral = parseModelConfig({ ...base, model_type: 'mistral', sliding_window: null }, 'm') as LlamaConfig;
    expect(familyOf(mistral).name).toBe('LLaMA');
    expect(mistral.qkvBias || mistral.outputBias || mistral.mlpBias).toBe(false);
    const qwen = parseModelConfig({ ...base, model_type: 'qwen2', use_sliding_window: false, sliding_window: 32 }, 'q') as LlamaConfig;
    expect([qwen.qkvBias, qwen.outputBias, qwen.mlpBias]).toEqual([true, false, false]);
    const names = expectedParameters(qwen).map((s) => s.name);
    expect(names).toContain('model.layers.0.self_attn.k_proj.bias');
    expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
  });

  it('reads rope_scaling under the legacy key "type" as under "rope_type"', async () => {
    const base = await rawConfig('llama3');
    const scaling = base.rope_scaling as Record<string, unknown>;
    const { rope_type: type, ...rest } = scaling;
    const legacy = parseModelConfig({ ...base, rope_scaling: { ...rest, type } }, 'legacy') as LlamaConfig;
    const current = parseModelConfig(base, 'current') as LlamaConfig;
    expect(legacy.rope).toEqual(current.rope);
    // llama3 bands: the highest frequency is untouched, the lowest divided by the factor.
    const plain = ropeInverseFrequencies({ ...current.rope, scaling: { type: 'default' } }, 16);
    const banded = ropeInverseFrequencies(current.rope, 16);
    expect(banded[0]).toBe(plain[0]);
    expect(banded[banded.length - 1]).toBeCloseTo(plain[plain.length - 1] / 8, 12);
  });
  it('linear scaling divides the frequencies; dynamic NTK grows the base only past max_position_embeddings', async () => {
    const base = await rawConfig('llama');
    const linear = (parseModelConfig({ ...base, rope_scaling: { rope_type: 'linear', factor: 4 } }, 'l') as LlamaConfig).rope;
    const dynamic = (parseModelConfig({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } }, 'd') as LlamaConfig).rope;
    const plain = ropeInverseFrequencies({ ...linear, scaling: { type: 'default' } }, 64);
    const d = linear.headDim;
    // float32 values: relative 1e-7 of the float64 formula.
    const near = (got: number, want: number) => expect(Math.abs(got - want)).toBeLessThanOrEqual(1.2e-7 * Math.abs(want));
    for (let i = 0; i < d / 2; i++) near(plain[i], 1 / 10000 ** ((2 * i) / d));
    ropeInverseFrequencies(linear, 64).forEach((v, i) => near(v, plain[i] / 4));
    expect(Array.from(ropeInverseFrequencies(dynamic, 256))).toEqual(Array.from(plain));
    // seq 512 = 2 × max_position_embeddings: base · (2·2 − 1)^(d/(d−2)).
    const grown = 10000 * 3 ** (d / (d - 2));
    const scaled = ropeInverseFrequencies(dynamic, 512);
    scaled.forEach((v, i) => near(v, 1 / grown ** ((2 * i) / d)));
    expect(scaled[1]).toBeLessThan(plain[1]);
  });
});

describe('checkpoint errors through loadModel', () => {
  it('a missing tensor: MISSING_TENSOR naming it', async () => {
    const gone = 'model.layers.2.mlp.up_proj.weight';
    const dir = await withTensors('llama', (ts) => ts.filter((t) => t.name !== gone));
    const err = await loadError(dir);
    expect(err.code).toBe('MISSING_TENSOR');
    expect(err.tensor).toBe(gone);
    expect(err.file).toBe(join(dir, 'model.safetensors'));
  });

  it('an extra tensor: UNEXPECTED_TENSOR naming it', async () => {
    const extra = 'model.layers.4.mlp.up_proj.weight';
    const dir = await withTensors('llama', (ts) => [...ts, { ...ts.find((t) => t.name === 'model.layers.3.mlp.up_proj.weight')!, name: extra }]);
    const err = await loadError(dir);
    expect(err.code).toBe('UNEXPECTED_TENSOR');
    expect(err.tensor).toBe(extra);
    expect(err.message).toContain(extra);
  });

  it('a tensor of the wrong shape: SHAPE_MISMATCH naming it', async () => {
    const name = 'model.decoder.layers.1.fc1.weight';
    const dir = await withTensors('opt', (ts) => ts.map((t) => (t.name === name ? { ...t, shape: [...t.shape].reverse() } : t)));
    const err = await loadError(dir);
    expect(err.code).toBe('SHAPE_MISMATCH');
    expect(err.tensor).toBe(name);
    expect(err.message).toContain('[64, 256]');
    expect(err.message).toContain('[256, 64]');
  });

  it('a stored tied head that differs from the embedding: TIED_WEIGHTS_DIFFER; an equal one loads', async () => {
    const embedding = (ts: WriteTensor[]) => ts.find((t) => t.name === 'model.embed_tokens.weight')!;
    const differs = await withTensors('llama3', (ts) => {
      const head = new Uint8Array(embedding(ts).data as Uint8Array);
      head[10] ^= 0x01;
      return [...ts, { ...embedding(ts), name: 'lm_head.weight', data: head }];
    });
    const err = await loadError(differs);
    expect(err.code).toBe('TIED_WEIGHTS_DIFFER');
    expect(err.tensor).toBe('lm_head.weight');
    expect(err.file).toBe(join(differs, 'model.safetensors'));

    const equal = await withTensors('llama3', (ts) => [...ts, { ...embedding(ts), name: 'lm_head.weight' }]);
    const [a, b] = [await loadModel(equal), await loadModel(familyDir('llama3'))];
    expect(Array.from(logitsOf(a, IDS))).toEqual(Array.from(logitsOf(b, IDS)));
    a.dispose();
    b.dispose();
  });

  it('bare-model names (OPTModel `decoder.…`) and a stored rotary buffer load as the canonical model', async () => {
    const bare = await withTensors('opt', (ts) => ts.map((t) => ({ ...t, name: t.name.replace(/^model\./, '') })));
    const [a, b] = [await loadModel(bare), await loadModel(familyDir('opt'))];
    expect(Array.from(logitsOf(a, IDS))).toEqual(Array.from(logitsOf(b, IDS)));
    a.dispose();
    b.dispose();
    const buffer = await withTensors('llama', (ts) => [...ts, { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [8], data: new Float32Array(8) }]);
    const c = await loadModel(buffer);
    expect(c.namedWeights().has('model.layers.0.self_attn.rotary_emb.inv_freq')).toBe(false);
    c.dispose();
  });
});

describe('save → load round trip', () => {
  for (const name of ['opt', 'llama', 'llama3'] as const) {
    it(`${name}: same tensor names, dtypes, bytes and shard split as the HF files; logits equal`, async () => {
      const ref = familyReference(name);
      const source = await Checkpoint.open(familyDir(name));
      const model = await loadModel(familyDir(name));
      const dir = scratch(`${name}-saved`);
      // The HF split: shard 1 holds exactly this many tensor bytes, and module order decides the rest.
      const shards = source.shardFiles();
      let firstShardBytes: number | undefined;
      if (shards.length > 1) {
        firstShardBytes = 0;
        for (const n of source.names()) if (source.fileOf(n).path === shards[0]) firstShardBytes += (await source.readRaw(n)).byteLength;
      }
      await model.save(dir, { dtype: ref.storage_dtype, maxShardBytes: firstShardBytes });
      const saved = await Checkpoint.open(dir);
      try {
        expect(saved.names().sort()).toEqual(source.names().sort());
        expect(saved.shardFiles().map((f) => f.split('/').pop())).toEqual(shards.map((f) => f.split('/').pop()));
        for (const n of saved.names()) {
          expect(saved.info(n).dtype).toBe(ref.storage_dtype);
          expect(saved.fileOf(n).path.split('/').pop(), n).toBe(source.fileOf(n).path.split('/').pop());
          expect(Buffer.from(await saved.readRaw(n)).equals(Buffer.from(await source.readRaw(n))), n).toBe(true);
        }
        if (ref.tied_keys_not_stored > 0) expect(saved.has('lm_head.weight')).toBe(false);
      } finally {
        await saved.close();
        await source.close();
      }
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toEqual(await rawConfig(name));
      const reloaded = await loadModel(dir);
      expect(Array.from(logitsOf(reloaded, IDS))).toEqual(Array.from(logitsOf(model, IDS)));
      reloaded.dispose();
      model.dispose();
    });
  }

  it('exposes the family linear targets as LoRA hosts under block-relative names and layouts', async () => {
    for (const name of ['opt', 'llama'] as const) {
      const model = await loadModel(familyDir(name));
      const targets = model.family.linearTargets(model.config);
      const block = model.blocks[0] as unknown as { linears(): Map<string, { layout: string; weight: tf.Variable }> };
      expect([...block.linears().keys()]).toEqual(targets.map((t) => t.name));
      for (const t of targets) {
        expect(block.linears().get(t.name)!.layout).toBe(t.layout);
        expect(model.namedWeights().get(`model.${name === 'opt' ? 'decoder.' : ''}layers.0.${t.name}.weight`)).toBe(block.linears().get(t.name)!.weight);
      }
      const attention = targets.filter((t) => t.part === 'attention').map((t) => t.name.split('.').pop()).sort();
      expect(attention).toEqual(name === 'opt' ? ['k_proj', 'out_proj', 'q_proj', 'v_proj'] : ['k_proj', 'o_proj', 'q_proj', 'v_proj']);
      model.dispose();
    }
  });

  it('OPT variants save and reload: post-LN, project_in/out, untied head, no biases', async () => {
    const base = await rawConfig('opt');
    const raw = { ...base, do_layer_norm_before: false, word_embed_proj_dim: 32, tie_word_embeddings: false, enable_bias: false, num_hidden_layers: 2, torch_dtype: 'float32' };
    const config = parseModelConfig(raw, 'variant') as OptConfig;
    expect([config.finalLayerNorm, config.projectEmbeddings]).toEqual([false, true]);
    const names = expectedParameters(config).map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['model.decoder.project_in.weight', 'model.decoder.project_out.weight', 'lm_head.weight']));
    expect(names.some((n) => n.endsWith('.bias') && n.includes('proj'))).toBe(false);
    expect(names).not.toContain('model.decoder.final_layer_norm.weight');
    const { createModel } = await import('@scaleot/model');
    const model = createModel(config, undefined, { seed: 3 });
    const dir = scratch('opt-variant');
    await model.save(dir);
    const reloaded = await loadModel(dir);
    expect([...reloaded.namedWeights().keys()].sort()).toEqual([...model.namedWeights().keys()].sort());
    expect(Array.from(logitsOf(reloaded, IDS))).toEqual(Array.from(logitsOf(model, IDS)));
    reloaded.dispose();
    model.dispose();
  });
});
