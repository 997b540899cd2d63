import { TransportError } from './TransportError.js';
import type { JsonValue } from './Tensor.js';

/** Control frame that precedes the tensor frames of every pattern message. */
export type Envelope =
  | { v: 1; type: 'result'; id: string; attempt: number; key: ResultKey; meta?: JsonValue }
  | { v: 1; type: 'ack'; id: string; attempt: number; duplicate: boolean }
  | { v: 1; type: 'nack'; id: string; attempt: number; code: string; message: string }
  | { v: 1; type: 'get'; id: string; minVersion: number; waitMs: number }
  | { v: 1; type: 'params'; id: string; version: number; meta?: JsonValue }
  | { v: 1; type: 'notyet'; id: string; latestVersion: number | null }
  | { v: 1; type: 'error'; id: string; code: string; message: string };

/** Identifies one worker result: the coordinator waits for a set of these. */
export interface ResultKey {
  runId: string;
  round: number;
  jobId: string;
}

export function resultKeyString(key: ResultKey): string {
  return JSON.stringify([key.runId, key.round, key.jobId]);
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  return Buffer.from(JSON.stringify(envelope));
}

const TYPES = new Set(['result', 'ack', 'nack', 'get', 'params', 'notyet', 'error']);

export function decodeEnvelope(frame: Buffer | undefined): Envelope {
  if (!frame || frame.byteLength > 64 * 1024) throw new TransportError('BAD_FRAME', 'envelope frame missing or too large');
  let value: unknown;
  try {
    value = JSON.parse(frame.toString('utf8'));
  } catch (cause) {
    throw new TransportError('BAD_FRAME', 'envelope frame is not JSON', { cause });
  }
  const e = value as Record<string, unknown> | null;
  if (typeof e !== 'object' || e === null || e.v !== 1 || typeof e.type !== 'string' || !TYPES.has(e.type) || typeof e.id !== 'string') {
    throw new TransportError('BAD_FRAME', 'envelope is not {v:1, type, id, ...}; is the peer speaking another protocol version?');
  }
  if (e.type === 'result') {
    const key = e.key as Record<string, unknown> | undefined;
    if (!key || typeof key.runId !== 'string' || !Number.isSafeInteger(key.round) || typeof key.jobId !== 'string') {
      throw new TransportError('BAD_FRAME', 'result envelope needs key {runId: string, round: integer, jobId: string}');
    }
  }
  return e as unknown as Envelope;
}
