import { type Stage1State, type Stage1StateFormat } from '@scaleot/scaleot';
import { ClusterError } from './ClusterError.js';

/** Everything a restarted coordinator needs to continue bit-identically after `step` completed rounds. */
export type ClusterStage1State = Stage1State;

/** The coordinator's checkpoint: runStage1's layout under its own format tag, failing with ClusterError BAD_CHECKPOINT / CHECKPOINT_MISMATCH. */
export const CLUSTER_STAGE1_STATE: Stage1StateFormat = {
  format: 'scaleot.cluster-stage1-state',
  error: (problem, message, options) => new ClusterError(problem === 'bad' ? 'BAD_CHECKPOINT' : 'CHECKPOINT_MISMATCH', message, options),
  elsewhere: 'outDir',
};
