export { ScaleotError, InvalidInputError } from './ScaleotError.js';
export { atomicWrite, atomicWriteFile, atomicWriteJson, tempPathFor, type AtomicWriteOptions } from './atomicWrite.js';
export { createLogger, logger, type Logger } from './logger.js';
export { Progress, type ProgressOptions } from './Progress.js';
export { isEntryPoint, onShutdownSignals } from './processLifecycle.js';
export { setLogFormat, logFormat, threadEnv, progressLine, formatField, formatDuration, humanLine, terminal, type LogFormat, type ProgressView } from './consoleOutput.js';
