export { ClusterError } from './ClusterError.js';
export { clusterConfigFromEnv, environmentHelp, redisConnectionOf, resolveArtifact, type ClusterConfig } from './clusterConfig.js';
export { writeTokenStream, readTokenStream, randomWindowStarts, windowBatch } from './tokenStreams.js';
export { ModelCache } from './ModelCache.js';
export { COMPUTE_JOBS } from './pipelineHandlers.js';
export type { JobStorage, PipelineJobArgs, Stage1ComputeArgs, Stage1ShardCompute } from './computeJobs.js';
export {
  paramsVersion,
  decodeVersion,
  shardResultKey,
  type Stage1ParamsMeta,
  type ShardJobResult,
  type RolloutJobResult,
  type ShardResultMeta,
} from './stage1Protocol.js';
export { Stage1WorkerRuntime, type Stage1WorkerRuntimeOptions } from './Stage1WorkerRuntime.js';
export { ClusterStage1Executor, type ClusterStage1ExecutorOptions, type ClusterRoundCompute } from './ClusterStage1Executor.js';
export { runDistributedStage1, makespan, sliceRows, type DistributedStage1Options, type DistributedStage1Result, type RoundTiming } from './runDistributedStage1.js';
export { ClusterWorker, type ClusterWorkerOptions } from './ClusterWorker.js';
export { pipelineHandlers, type PipelineHandlerOptions } from './pipelineHandlers.js';
export { TenantAuth } from './TenantAuth.js';
export { ApiRateLimiter, type ApiRateLimiterOptions } from './ApiRateLimiter.js';
export { HTTP_STATUS_OF_CODE, httpStatusOf, apiCodeOfFastify } from './httpStatus.js';
export {
  NAME_PATTERN,
  createRequestSchema,
  coordinatorSettingsSchema,
  checkContract,
  contractIssues,
  readSettingsFile,
  stage1Steps,
  type CreateRequestContract,
  type CoordinatorSettings,
} from './contracts.js';
export { packTar, unpackTar } from './tarball.js';
export type { JobRunner, RunJobOptions } from './JobRunner.js';
export { QueueJobRunner } from './QueueJobRunner.js';
export { LocalJobRunner } from './LocalJobRunner.js';
export { trainHyperOf, type EvaluateJobResult } from './pipelineHandlers.js';
export {
  Coordinator,
  renderFiveNumbers,
  type CoordinatorOptions,
  type TenantQuotas,
  type TuningRequest,
  type CreateRequestBody,
  type PrivacyPreset,
  type RequestStatus,
  type FiveNumbers,
} from './Coordinator.js';
export { runPipeline, DEMO_STAGE1, DEMO_TUNE, DEMO_EVAL, DEMO_PRESETS, type PipelineOptions, type PipelineResult } from './runPipeline.js';
export { freePort, appEntry, spawnApp, stopApp, uniqueQueuePrefix, type ManagedProcess } from './LocalCluster.js';
export { redisReachable } from './redisReachable.js';
export { coordinatorStartup, workerStartup, exitWithProblems, type StartupResult } from './startupChecks.js';
export { measureRoundOverhead, type RoundOverheadOptions, type RoundOverheadResult } from './measureRoundOverhead.js';
export { explainedReport, presetName, FIVE_NUMBER_MEANINGS, type ExplainedReport, type ExplainedReportInput, type ExplainedEmulator } from './explainedReport.js';
export { evaluationProtocol, type EvaluationProtocol } from './evaluationProtocol.js';
export { writeDemoReport, runVersions, type DemoReportInput } from './writeDemoReport.js';
export { Stage1Monitor, type Stage1Progress } from './Stage1Monitor.js';
export { queueDepths, workersOverview, THROUGHPUT_WINDOW_S, type QueueDepth, type WorkerView } from './clusterOverview.js';
export { PipelineSession, microBatches, type PipelineSessionOptions, type StageReady, type MicroBatchRows, type PipelineGradients } from './PipelineSession.js';
export { PipelineRun, type PipelineRunOptions } from './PipelineRun.js';
export { PipelineStage1Executor, type PipelineRoundCompute } from './PipelineStage1Executor.js';
export { runPipelineStage1, type PipelineStage1Options, type PipelineStage1Result } from './runPipelineStage1.js';
export { planPipeline } from './planPipeline.js';
export { PipelineTrainer } from './PipelineTrainer.js';
export { runPipelineTraining, type PipelineTrainingOptions, type PipelineTrainingResult } from './runPipelineTraining.js';
export type { StageStats, PipelineStageArgs, StageTrainHeader } from './pipelineStageCompute.js';
export { PIPELINE_STAGE_COMPUTE } from './pipelineHandlers.js';
export { runPipelineEvaluation, type PipelineEvaluationOptions, type PipelineEvaluationResult } from './runPipelineEvaluation.js';
export { peakRssBytes } from './peakRss.js';
export { WorkerRegistry, type WorkerRecord, type WorkerRegistryOptions } from './WorkerRegistry.js';
export { planPlacement, type Placement, type PlacementOptions } from './planPlacement.js';
export { PlacingJobRunner, type PlacingJobRunnerOptions } from './PlacingJobRunner.js';
export { stagesHolding, sendWeights, type StagesHolding } from './stageWeights.js';
export { runClusterStage1, type ClusterStage1Options, type ClusterStage1Result } from './runClusterStage1.js';
