export { OffsiteError, ManifestError, AdapterMismatchError } from './OffsiteError.js';
export { adapterLayout, isSandwich, uniformKeepPositions, selectKeptMiddle, type AdapterLayout, type AdapterLayoutOptions, type LayerSelection } from './layout.js';
export {
  MANIFEST_VERSION,
  EMULATOR_MANIFEST,
  ADAPTER_MANIFEST,
  EMULATOR_WEIGHTS,
  ADAPTER_WEIGHTS,
  readManifest,
  validateManifest,
  type LayerAssignment,
  type LoraSpec,
  type AdapterPlacement,
  type EmulatorManifest,
  type AdapterManifest,
  type Manifest,
} from './manifest.js';
export { sourceModelInfo, type SourceModelInfo } from './sourceModel.js';
export { emulatorFingerprint } from './emulatorFingerprint.js';
export { registerBlockKind, blockKindModules, type BlockKindFactory, type BlockKindContext } from './blockKinds.js';
export { saveEmulator, loadEmulator, buildEmulatorModel, stemParameterNames, layerDropMap, TOKENIZER_FILES, copiedModelFiles, type EmulatorSpec, type LoadedEmulator, type ShapedArray } from './emulator.js';
export { LoraBlock, isLoraHost } from './LoraBlock.js';
export { loadEmulatorStage, loadPipelineStage } from './emulatorStage.js';
export { readTrainableWeights, type TrainableSelection, type TrainableWeights } from './trainableWeights.js';
export { shiftedTokenNll, shiftedLossSum, nllScorer, logprobScorer } from './lmMath.js';
export { TaskBatcher, type TaskBatcherOptions, type TaskBatcherState, type TrainRows } from './TaskBatcher.js';
export { trainLoop, DEFAULT_TRAIN, type GradientExecutor, type TrainHyperParameters, type TrainLoopOptions, type TrainStepInfo, type TrainResult } from './trainLoop.js';
export { saveAdapter, readAdapter, applyAdapter, isAdapterTensor, type LoadedAdapter } from './adapterArtifact.js';
export { tuneAdapter, tuneAdapterInMemory, emulatorReplica, wrapWithLora, trainableAdapterVariables, adapterWeights, type TuneAdapterOptions, type TuneAdapterResult, type RunControl } from './tuneAdapter.js';
export { plugIn, plugInModel, PLUGIN_RECORD, type PlugInOptions, type PlugInResult } from './plugIn.js';
export { evaluate, evaluateModel, evaluateScored, taskMetric, type SequenceScorer, type EvalOptions, type EvaluateOptions, type EvalResult, type Metric } from './evaluate.js';
export { fullFineTune, fullFineTuneInMemory, type FullFineTuneOptions } from './fullFineTune.js';
export { createUniformEmulator, type UniformEmulatorOptions, type UniformEmulatorResult, type DistillSettings } from './uniformEmulator.js';
export { distillEmulator, type DistillOptions } from './distill.js';
export { fiveNumberReport, renderReportMarkdown, type FiveNumberReport, type FiveNumberReportOptions, type ReportPhase } from './report.js';
export { resolveTask, type TaskInput } from './taskInput.js';
export { writeArtifactDir, type ArtifactFile } from './artifactDir.js';
export { auditEmulator, fineTuneAttack, distillAttack, klToTeacherSum, allEmulatorVariables, ATTACKERS, type AttackerName, type AttackerResult, type EmulatorAuditOptions, type EmulatorAuditResult } from './audit.js';
