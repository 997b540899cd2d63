import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, useBackend, type CausalLM } from '@scaleot/model';
import { FAMILY_MODELS, familyDir, familyReference, rowDeviation, type FamilyRow, type PaddedFamilyRow } from './familiesFixtures.js';

// HF transformers float32 reference (eager attention, CPU). HF float32 vs float64 differs by up to 3e-5
// on these logits; a correct float32 implementation lands well inside 1e-4.
const TOL = 1e-4;
const report: string[] = [];

interface Deviation {
  logit: number;
  nll: number;
  compared: number;
}

// cpu is pure JS: one forward serves both checks there; wasm runs tokenNll's own forward as well.
async function compareRow(model: CausalLM, backend: string, row: FamilyRow | PaddedFamilyRow, dev: Deviation): Promise<void> {
  const d = await rowDeviation(model, row, backend === 'cpu' ? 'logits' : 'tokenNll');
  dev.logit = Math.max(dev.logit, d.logit);
  dev.nll = Math.max(dev.nll, d.nll);
  dev.compared += d.compared;
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
