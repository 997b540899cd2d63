import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURE_DATA_DIR, fixtureModelDir, FIXTURES_DIR } from '../../../test/support/fixtures.js';

/** `../shared/fixtures` relative to the repository root (override: SCALEOT_FIXTURES). */
export const fixturesDir = FIXTURES_DIR;
export const tinyModelDir = fixtureModelDir('tiny');
export const smallModelDir = fixtureModelDir('small');
export const dataRoot = FIXTURE_DATA_DIR;

export function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `scaleot-offsite-${label}-`));
}

/** Shortened training settings: what must hold at any scale, in seconds. */
export const SHORT_TRAIN = { steps: 6, batchSize: 4, microBatchSize: 4, seqLen: 64, lr: 3e-4, warmupSteps: 1, maxTrainRows: 12 };
