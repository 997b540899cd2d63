// The OPT / LLaMA conformance fixtures (../shared/fixtures/families-reference.json and its model dirs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { crossEntropyPerToken, type CausalLM, type ForwardOptions } from '@scaleot/model';
import { FIXTURES } from './fixtures.js';

export type FamilyModel = 'opt' | 'llama' | 'llama3' | 'sotu_llama_24l';
export const FAMILY_MODELS: readonly FamilyModel[] = ['opt', 'llama', 'llama3', 'sotu_llama_24l'];

export interface FamilyRow {
  ids: number[];
  nll: Array<number | null>;
  logits: Record<string, number[]>;
}

export interface PaddedFamilyRow extends FamilyRow {
  attention_mask: number[];
  position_ids: number[] | null;
}

export interface FamilyReference {
  /** Relative to the fixtures dir, e.g. `families/opt-tiny`. */
  dir: string;
  storage_dtype: 'F16' | 'BF16' | 'F32';
  tied_keys_not_stored: number;
  rows: FamilyRow[];
  padded_rows: PaddedFamilyRow[];
}

let cached: Record<FamilyModel, FamilyReference> | undefined;

export function familyReference(model: FamilyModel): FamilyReference {
  cached ??= (JSON.parse(readFileSync(join(FIXTURES, 'families-reference.json'), 'utf8')) as { models: Record<FamilyModel, FamilyReference> }).models;
  return cached[model];
}

/** Absolute path of a family fixture model dir. */
export function familyDir(model: FamilyModel): string {
  return join(FIXTURES, familyReference(model).dir);
}

/**
 * Max |Δ| of one reference row's logits (at its listed positions) and per-token NLL (pad positions
 * skipped). `nll: 'logits'` takes the NLL from the same forward's logits (one pass, for the slow
 * backends); `'tokenNll'` runs the model's own tokenNll forward as well.
 */
export async function rowDeviation(model: CausalLM, row: FamilyRow | PaddedFamilyRow, nllFrom: 'logits' | 'tokenNll' = 'logits'): Promise<{ logit: number; nll: number; compared: number }> {
  const t = row.ids.length;
  const ids = tf.tensor2d([row.ids], [1, t], 'int32');
  const opts: ForwardOptions = {};
  if ('attention_mask' in row) {
    opts.attentionMask = tf.tensor2d([row.attention_mask], [1, t], 'int32');
    if (row.position_ids) opts.positionIds = tf.tensor2d([row.position_ids], [1, t], 'int32');
  }
  try {
    const logits = model.logits(ids, opts);
    const nll = nllFrom === 'logits' ? tf.tidy(() => crossEntropyPerToken(tf.slice(logits, [0, 0, 0], [1, t - 1, -1]), tf.slice(ids, [0, 1], [1, t - 1]))) : model.tokenNll(ids, opts);
    const logitRows = (await logits.array())[0];
    const nllRow = ((await nll.array()) as number[][])[0];
    tf.dispose([logits, nll]);
    const dev = { logit: 0, nll: 0, compared: 0 };
    expect(Object.keys(row.logits)).toContain(String(t - 1));
    for (const [pos, want] of Object.entries(row.logits)) {
      const got = logitRows[Number(pos)];
      expect(got.length).toBe(want.length);
      for (let j = 0; j < want.length; j++) dev.logit = Math.max(dev.logit, Math.abs(got[j] - want[j]));
      dev.compared += want.length;
    }
    expect(nllRow.length).toBe(row.nll.length);
    let real = 0;
    row.nll.forEach((want, i) => {
      if (want === null) return;
      real++;
      dev.nll = Math.max(dev.nll, Math.abs(nllRow[i] - want));
    });
    expect(real).toBeGreaterThan(0);
    return dev;
  } finally {
    tf.dispose([ids, opts.attentionMask, opts.positionIds].filter((x): x is tf.Tensor2D => x !== undefined));
  }
}
