import { fixtureModelDir, FIXTURES_DIR } from '../../../test/support/fixtures.js';

/** `../shared/fixtures` relative to the repository root (override: SCALEOT_FIXTURES). */
export const fixturesDir = FIXTURES_DIR;
export const tinyModelDir = fixtureModelDir('tiny');
