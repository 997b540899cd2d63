export { ScaleotMetrics, createMetrics, createMetricsRegistry, type MetricsRegistryOptions } from './ScaleotMetrics.js';
export { JOB_STATES, QUEUE_DEPTH_STATES, type JobState } from './jobStates.js';
export { collectQueueMetrics, type QueueLike, type QueueCounts, type QueueGauges } from './collectQueueMetrics.js';
export {
  startMetricsServer,
  metricsHandler,
  renderMetrics,
  type MetricsServer,
  type MetricsServerOptions,
  type HealthStatus,
  type HealthCheck,
} from './metricsServer.js';
