// The OPT / LLaMA conformance fixtures (../shared/fixtures/families-reference.json and its model dirs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
