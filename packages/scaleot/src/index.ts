export { ScaleotMethodError, Stage1MismatchError } from './ScaleotMethodError.js';
export { svd, lowRankFactors, lowRankApproximation, reconstruct, multiplyFactors, symmetricEigen, gemmNT, type SvdResult, type SvdOptions } from './svd.js';
export { Harmonizer, HARMONIZER_KIND, harmonizerPrefix, type HarmonizerOptions } from './Harmonizer.js';
export { middleGroups, middleSegments, rawPerGroup, sigmoid, sampleGroupedMask, reinforceUpdate, type MaskSamplingOptions, type ReinforceOptions, type ReinforceResult } from './importance.js';
export {
  maskedBlocks,
  maskedForward,
  harmonizerGradientStep,
  applyHarmonizerUpdate,
  HarmonizerOptimizer,
  rolloutLoss,
  activeVariables,
  maskedModules,
  maskedSegment,
  type MaskedSegmentResult,
  type MaskedForwardResult,
  type GradientStepOptions,
  type GradientStepResult,
} from './harmonizerStep.js';
export { stageBackward, stageMaskedForward, syncHarmonizers, type StageRoundSettings, type StageBackwardInput, type StageBackwardResult } from './stageStep.js';
export {
  runStage1,
  resolveStage1Hyper,
  stage1Layout,
  corpusStreams,
  stage1Streams,
  DEFAULT_STAGE1,
  writeStage1Artifacts,
  saveStage1State,
  loadStage1State,
  hasStage1State,
  initialStage1State,
  STAGE1_STATE,
  type Stage1ArtifactsInput,
  type Stage1State,
  type Stage1StateFormat,
  type Stage1HyperParameters,
  type Stage1Options,
  type Stage1Result,
  type Stage1StepLog,
} from './stage1.js';
export {
  readStage1,
  checkStage1Source,
  importanceTable,
  STAGE1_FORMAT,
  STAGE1_VERSION,
  STAGE1_MANIFEST,
  STAGE1_SCORES,
  STAGE1_HARMONIZERS,
  STAGE1_LOG,
  type Stage1Layout,
  type Stage1Manifest,
  type Stage1Artifacts,
  type BlockImportance,
} from './stage1Artifacts.js';
export { registerScaleotBlockKinds, SRC_FACTORS_KIND, srcFactorNames } from './blockKinds.js';
export {
  buildScaleotEmulator,
  planEmulator,
  checkFraction,
  srcRank,
  compressRawMiddle,
  defaultSrcTargets,
  type EmulatorMode,
  type ScaleotEmulatorOptions,
  type ScaleotEmulatorResult,
  type EmulatorPlan,
} from './emulator.js';

export {
  runGradot,
  measureGradotOnModel,
  adapterGradient,
  gradientChange,
  gradotKeepScores,
  type SelectionCriterion,
  type GradotOptions,
  type GradotRunOptions,
  type GradotBlock,
  type GradotMeasurement,
  type GradotRound,
  type AdapterGradient,
} from './gradotSelect.js';

import { registerScaleotBlockKinds } from './blockKinds.js';

// Importing the package is enough for offsite's loadEmulator to rebuild ScaleOT emulators.
registerScaleotBlockKinds();
export {
  runScaleotExperiment,
  targetChecks,
  experimentMarkdown,
  type ScaleotExperimentOptions,
  type ScaleotExperimentResult,
  type ExperimentRow,
  type TargetCheck,
} from './experiment.js';
export { runFrontier, layerImportance, type FrontierOptions, type FrontierPoint, type FrontierResult, type LayerImportanceData } from './frontier.js';
export { frontierFromReports, FRONTIER_REPORT_FILES, type FrontierFromReports } from './frontierReports.js';
export { stage1Loop, windowStarts, type Stage1LoopOptions, type Stage1LoopTiming } from './stage1Loop.js';
export { windowsAt, type Stage1Executor, type Stage1RunContext, type Stage1Round, type Stage1Gradients } from './Stage1Executor.js';
export { LocalStage1Executor } from './LocalStage1Executor.js';
