export { TransportError, type TransportErrorCode } from './TransportError.js';
export { DTYPES, bytesPerElement, type DType, type TensorData } from './dtypes.js';
export { createTensor, elementCount, type JsonValue, type Tensor } from './Tensor.js';
export { TensorSet } from './TensorSet.js';
export { checksumOf, checksumMatches, DEFAULT_CHECKSUM, type ChecksumAlgorithm } from './checksum.js';
export {
  encodeTensorSet,
  decodeTensorSet,
  framesByteLength,
  WIRE_VERSION,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  type FrameHeader,
  type EncodeOptions,
  type DecodeOptions,
} from './tensorCodec.js';
export { generateCurveKeyPair, z85Encode, refusedCurveHandshakes, type CurveKeyPair, type CurveServerOptions, type CurveClientOptions } from './curve.js';
export type { SocketOptions } from './SocketOptions.js';
export { resultKeyString, type ResultKey } from './envelope.js';
export { ResultCollector, type ResultCollectorOptions, type ReceivedResult, type CollectOptions, type CollectResult } from './ResultCollector.js';
export { ResultSender, type ResultSenderOptions, type SendReceipt } from './ResultSender.js';
export { ParameterPublisher, type ParameterPublisherOptions, type PublishOptions } from './ParameterPublisher.js';
export { ParameterSubscriber, type ParameterSubscriberOptions, type ParameterSnapshot, type FetchOptions } from './ParameterSubscriber.js';
export { measureThroughput, type ThroughputOptions, type ThroughputResult, type ThroughputPattern } from './measureThroughput.js';
export { PipelineInbox, PipelineOutbox, encodePipelineMessage, decodePipelineMessage, PIPELINE_CHUNK_BYTES, type PipelineMessage, type PipelineLinkOptions } from './PipelineLink.js';
