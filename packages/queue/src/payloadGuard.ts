import type { PayloadIssue } from './InvalidJobPayloadError.js';

/** Limits that keep bulk data out of job payloads. */
export interface PayloadLimits {
  /** Longest array allowed anywhere in a payload. Default 10000. */
  maxArrayLength?: number;
  /** Largest payload as JSON, bytes. Default 256 KiB. */
  maxPayloadBytes?: number;
  /** Deepest nesting. Default 32. */
  maxDepth?: number;
}

const TENSOR_HINT = 'tensors do not go in job payloads (Redis stores them in clear, in memory); send them with @scaleot/transport and put its address and version in the payload';

/**
 * Issues for anything that is not small plain JSON: typed arrays, Buffers, ArrayBuffers, long arrays,
 * class instances, functions, bigints, oversized payloads.
 */
export function findPayloadHazards(payload: unknown, limits: PayloadLimits = {}): PayloadIssue[] {
  const maxArrayLength = limits.maxArrayLength ?? 10_000;
  const maxDepth = limits.maxDepth ?? 32;
  const issues: PayloadIssue[] = [];
  const visit = (value: unknown, path: string, depth: number): void => {
    if (issues.length >= 8) return;
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) issues.push({ path, message: `is ${value}, which JSON cannot carry` });
      return;
    }
    if (typeof value !== 'object') {
      if (value !== undefined) issues.push({ path, message: `is a ${typeof value}, which JSON cannot carry` });
      return;
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer)) {
      issues.push({ path, message: `is a ${value.constructor.name}: ${TENSOR_HINT}` });
      return;
    }
    if (depth >= maxDepth) {
      issues.push({ path, message: `nests deeper than ${maxDepth} levels` });
      return;
    }
    if (Array.isArray(value)) {
      if (value.length > maxArrayLength) {
        issues.push({ path, message: `has ${value.length} items, over the ${maxArrayLength} allowed: ${TENSOR_HINT}` });
        return;
      }
      value.forEach((item, i) => visit(item, `${path}[${i}]`, depth + 1));
      return;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      issues.push({ path, message: `is a ${value.constructor?.name ?? 'class instance'}; payloads are plain JSON objects` });
      return;
    }
    for (const [key, item] of Object.entries(value)) visit(item, `${path}.${key}`, depth + 1);
  };
  visit(payload, '$', 0);
  if (issues.length === 0) {
    const maxPayloadBytes = limits.maxPayloadBytes ?? 256 * 1024;
    const bytes = Buffer.byteLength(JSON.stringify(payload) ?? '');
    if (bytes > maxPayloadBytes) issues.push({ path: '$', message: `is ${bytes} bytes as JSON, over the ${maxPayloadBytes} allowed: ${TENSOR_HINT}` });
  }
  return issues;
}
