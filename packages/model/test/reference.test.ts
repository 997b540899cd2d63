import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { crossEntropyPerToken, loadModel, useBackend, type CausalLM } from '@scaleot/model';
import { modelDir, referenceRows } from './fixtures.js';

// HF transformers float32 reference; a correct float32 implementation lands within ~1e-4.
const TOL = 1e-3;
const report: string[] = [];

for (const backend of ['wasm', 'cpu'] as const) {
  for (const name of ['tiny', 'small'] as const) {
    describe(`${name} fixture on ${backend}`, () => {
      // The cpu backend is pure JS (~0.5 GFLOP/s): the small model needs about a minute on a busy machine.
      it('reproduces the HF reference logits and per-token NLL', { timeout: 600_000 }, async () => {
        await useBackend(backend);
        const model: CausalLM = await loadModel(modelDir(name));
        try {
          let maxLogit = 0;
          let maxNll = 0;
          for (const row of referenceRows(name)) {
            const ids = tf.tensor2d([row.ids], [1, row.ids.length], 'int32');
            const logits = model.logits(ids);
            // cpu is pure JS: one forward serves both checks there (the same cross-entropy op on the
            // same logits); wasm runs tokenNll's own forward as well.
            const t = row.ids.length;
            const nll =
              backend === 'cpu'
                ? tf.tidy(() => crossEntropyPerToken(tf.slice(logits, [0, 0, 0], [1, t - 1, -1]), tf.slice(ids, [0, 1], [1, t - 1])))
                : model.tokenNll(ids);
            const logitRows = (await logits.array())[0];
            const nllRow = ((await nll.array()) as number[][])[0];
            tf.dispose([ids, logits, nll]);
            expect(Object.keys(row.logits)).toContain(String(row.ids.length - 1));
            for (const [pos, want] of Object.entries(row.logits)) {
              const got = logitRows[Number(pos)];
              expect(got.length).toBe(want.length);
              for (let j = 0; j < want.length; j++) maxLogit = Math.max(maxLogit, Math.abs(got[j] - want[j]));
            }
            expect(nllRow.length).toBe(row.nll.length);
            for (let i = 0; i < row.nll.length; i++) maxNll = Math.max(maxNll, Math.abs(nllRow[i] - row.nll[i]));
          }
          report.push(`${name}/${backend}: max|Δlogit| ${maxLogit.toExponential(2)}, max|Δnll| ${maxNll.toExponential(2)}`);
          expect(maxLogit).toBeLessThan(TOL);
          expect(maxNll).toBeLessThan(TOL);
        } finally {
          model.dispose();
        }
      });
    });
  }
}

afterAll(() => {
  console.log(report.join('\n'));
});
