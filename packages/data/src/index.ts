export { TaskError } from './TaskError.js';
export { Rng, createRng, shuffle, uniformInt } from './Rng.js';
export {
  TASK_SPEC_VERSION,
  PROTOCOL_VERSION,
  TASK_SPEC_FILE,
  loadTaskSpec,
  validateTaskSpec,
  loadTaskData,
  taskRows,
  candidateLabels,
  type TaskType,
  type TaskSplit,
  type TaskRow,
  type TaskSpec,
  type LmTaskSpec,
  type ClassificationTaskSpec,
  type Task,
} from './taskSpec.js';
export { BUILTIN_TASK_SPECS, builtinTaskNames, isBuiltinTask, builtinTask, loadTask } from './builtinTasks.js';
export { parseTemplate, renderTemplate, type ParsedTemplate } from './template.js';
export { lmDocuments, lmStream, lmEvalBlocks, randomWindows, type TokenEncoder } from './lm.js';
export { classificationExamples, classificationTrainSequence, type ClassificationExample, type TrainSequence } from './classification.js';
export {
  perplexity,
  multipleChoiceAccuracy,
  type NllFn,
  type LogprobFn,
  type ScoringOptions,
  type ScoringProgress,
  type PerplexityResult,
  type MultipleChoiceResult,
} from './scoring.js';
