import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { crossEntropyPerToken, loadModel, useBackend, type CausalLM, type ForwardOptions } from '@scaleot/model';
import { FAMILY_MODELS, familyDir, familyReference, type FamilyRow, type PaddedFamilyRow } from './familiesFixtures.js';

// HF transformers float32 reference (eager attention, CPU). HF float32 vs float64 differs by up to 3e-5
// on these logits; a correct float32 implementation lands well inside 1e-4.
const TOL = 1e-4;
const report: string[] = [];

interface Deviation {
  logit: number;
  nll: number;
  compared: number;
}

async function compareRow(model: CausalLM, backend: string, row: FamilyRow | PaddedFamilyRow, dev: Deviation): Promise<void> {
  const t = row.ids.length;
  const ids = tf.tensor2d([row.ids], [1, t], 'int32');
  const opts: ForwardOptions = {};
  if ('attention_mask' in row) {
    opts.attentionMask = tf.tensor2d([row.attention_mask], [1, t], 'int32');
    if (row.position_ids) opts.positionIds = tf.tensor2d([row.position_ids], [1, t], 'int32');
  }
  try {
    const logits = model.logits(ids, opts);
    // cpu is pure JS: one forward serves both checks there; wasm runs tokenNll's own forward as well.
    const nll =
      backend === 'cpu' ? tf.tidy(() => crossEntropyPerToken(tf.slice(logits, [0, 0, 0], [1, t - 1, -1]), tf.slice(ids, [0, 1], [1, t - 1]))) : model.tokenNll(ids, opts);
    const logitRows = (await logits.array())[0];
    const nllRow = ((await nll.array()) as number[][])[0];
    tf.dispose([logits, nll]);
    expect(Object.keys(row.logits)).toContain(String(t - 1));
    for (const [pos, want] of Object.entries(row.logits)) {
      const got = logitRows[Number(pos)];
      expect(got.length).toBe(want.length);
      for (let j = 0; j < want.length; j++) dev.logit = Math.max(dev.logit, Math.abs(got[j] - want[j]));
      dev.compared += want.length;
    }
    expect(nllRow.length).toBe(row.nll.length);
    let real = 0;
    for (let i = 0; i < row.nll.length; i++) {
      const want = row.nll[i];
      if (want === null) continue;
      real++;
      dev.nll = Math.max(dev.nll, Math.abs(nllRow[i] - want));
    }
    expect(real).toBeGreaterThan(0);
  } finally {
    tf.dispose([ids, opts.attentionMask, opts.positionIds].filter((x): x is tf.Tensor2D => x !== undefined));
  }
}

for (const backend of ['wasm', 'cpu'] as const) {
  for (const name of FAMILY_MODELS) {
    describe(`${name} family fixture on ${backend}`, () => {
      it('reproduces the HF reference logits and per-token NLL, plain and left-padded rows', { timeout: 600_000 }, async () => {
        await useBackend(backend);
        const ref = familyReference(name);
        const model = await loadModel(familyDir(name));
        try {
          const plain: Deviation = { logit: 0, nll: 0, compared: 0 };
          for (const row of ref.rows) await compareRow(model, backend, row, plain);
          const padded: Deviation = { logit: 0, nll: 0, compared: 0 };
          for (const row of ref.padded_rows) await compareRow(model, backend, row, padded);
          report.push(
            `${name}/${backend}: rows max|Δlogit| ${plain.logit.toExponential(2)}, max|Δnll| ${plain.nll.toExponential(2)}` +
              (ref.padded_rows.length > 0 ? `; padded max|Δlogit| ${padded.logit.toExponential(2)}, max|Δnll| ${padded.nll.toExponential(2)}` : ''),
          );
          expect(plain.compared).toBeGreaterThan(0);
          expect(plain.logit).toBeLessThan(TOL);
          expect(plain.nll).toBeLessThan(TOL);
          expect(padded.logit).toBeLessThan(TOL);
          expect(padded.nll).toBeLessThan(TOL);
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
