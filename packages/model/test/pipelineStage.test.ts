import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '@scaleot/checkpoint';
import { loadModel, loadStage, openModelCheckpoint, stageParameters, useBackend, type CausalLM, type PipelineStage, type StageRange } from '@scaleot/model';
import { FIXTURES } from './fixtures.js';

// Composing the stages runs the same kernels on the same values as the whole model, so the logits agree
// to float32 rounding at worst; the bar is 1e-6 relative.
const REL_TOL = 1e-6;

function maxRelativeDeviation(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst / scale;
}

const sizeOf = ([begin, end]: [number, number]) => end - begin;

/** Bytes the stored tensors of `names` take on disk (their stored dtype): what a stage must read, no more. */
async function storedBytesOf(dir: string, range: StageRange): Promise<number> {
  const { checkpoint, family, config, names } = await openModelCheckpoint(dir, { checkTiedWeights: false });
  try {
    const held = stageParameters(family, config, range);
    let bytes = 0;
    for (const [canonical, stored] of names) if (held.names.has(canonical)) bytes += sizeOf(checkpoint.info(stored).dataOffsets);
    return bytes;
  } finally {
    await checkpoint.close();
  }
}

const CASES: Array<{ name: string; dir: string; ranges: StageRange[] }> = [
  { name: 'sotu-llama-24l (BF16, 2 shards, untied head)', dir: join(FIXTURES, 'models', 'sotu-llama-24l'), ranges: [{ from: 0, to: 8 }, { from: 8, to: 16 }, { from: 16, to: 24 }] },
  { name: 'sotu-gpt2-tiny (tied head)', dir: join(FIXTURES, 'models', 'sotu-gpt2-tiny'), ranges: [] },
];

describe('pipeline stages from a partial load', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  for (const c of CASES) {
    describe(c.name, () => {
      let full: CausalLM;
      let stages: PipelineStage[] = [];
      const bytesRead: number[] = [];
      let ranges = c.ranges;

      beforeAll(async () => {
        full = await loadModel(c.dir, { trainable: false });
        if (ranges.length === 0) {
          const n = full.config.nLayer;
          const a = Math.max(1, Math.floor(n / 3));
          const b = Math.max(a + 1, Math.floor((2 * n) / 3));
          ranges = [{ from: 0, to: a }, { from: a, to: b }, { from: b, to: n }];
        }
        for (const range of ranges) {
          const loaded = await loadStage(c.dir, range, { trainable: false });
          stages.push(loaded.stage);
          bytesRead.push(loaded.bytesRead);
        }
      });

      afterAll(() => {
        full?.dispose();
        for (const s of stages) s.dispose();
        stages = [];
      });

      it('composed in order, gives the whole model\'s logits within 1e-6 relative', () => {
        const t = 32;
        const ids = tf.tensor2d(Int32Array.from({ length: 2 * t }, (_, i) => (i * 7919 + 13) % full.config.vocabSize), [2, t], 'int32');
        const expected = full.logits(ids);
        let h: tf.Tensor = ids;
        for (const stage of stages) {
          const next = stage.forward(h);
          if (h !== ids) h.dispose();
          h = next;
        }
        const got = stages.at(-1)!.head(h as tf.Tensor3D);
        const deviation = maxRelativeDeviation(got.dataSync() as Float32Array, expected.dataSync() as Float32Array);
        expect(got.shape).toEqual(expected.shape);
        expect(deviation).toBeLessThanOrEqual(REL_TOL);
        tf.dispose([ids, expected, h, got]);
      });

      it('each stage reads exactly its own tensors and holds no other weights', async () => {
        const checkpoint = await Checkpoint.open(c.dir);
        const totalStored = checkpoint.names().reduce((n, name) => n + sizeOf(checkpoint.info(name).dataOffsets), 0);
        await checkpoint.close();
        let sum = 0;
        for (let i = 0; i < stages.length; i++) {
          const expectedBytes = await storedBytesOf(c.dir, ranges[i]);
          expect(bytesRead[i]).toBe(expectedBytes);
          expect(bytesRead[i]).toBeLessThan(totalStored);
          sum += bytesRead[i];
          const held = [...stages[i].namedWeights().keys()];
          const blocks = held.map((n) => full.family.naming.blockIndex(n)).filter((b): b is number => b !== undefined);
          expect(Math.min(...blocks)).toBe(ranges[i].from);
          expect(Math.max(...blocks)).toBe(ranges[i].to - 1);
        }
        // Untied: the stages together read the checkpoint exactly once. Tied: the embedding twice (first
        // stage to embed, last stage as its head), and never the stored head or buffers.
        if (!full.config.tieWordEmbeddings) expect(sum).toBe(totalStored);
        else expect(sum).toBeLessThanOrEqual(totalStored + bytesRead[0]);
      });
    });
  }

  it('refuses an empty or out-of-model range', async () => {
    await expect(loadStage(join(FIXTURES, 'models', 'sotu-llama-24l'), { from: 8, to: 8 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(loadStage(join(FIXTURES, 'models', 'sotu-llama-24l'), { from: 20, to: 25 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});
