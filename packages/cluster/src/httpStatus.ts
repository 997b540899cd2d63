/**
 * The one table from an error code to its HTTP status. Every code the API can answer with is listed;
 * anything else is a 500 with a generic message (details go to the coordinator log only).
 */
export const HTTP_STATUS_OF_CODE: Readonly<Record<string, number>> = {
  /** The body or parameters break the route's contract (wrong type, unknown key, out of range). */
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  INVALID_INPUT: 400,
  /** A malformed upload (tar, adapter files). */
  BAD_UPLOAD: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  /** The request conflicts with the state of the resource (not ready yet, cancelled). */
  CONFLICT: 409,
  /** The uploaded adapter was tuned on another emulator than this request's. */
  ADAPTER_PROVENANCE_MISMATCH: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** Well-formed, but impossible for this model or cluster (N_a against the model's blocks or stage 1's layout). */
  UNPROCESSABLE: 422,
  /** Per-tenant limits: concurrent requests, storage bytes. */
  QUOTA_EXCEEDED: 429,
  RATE_LIMITED: 429,
  NOT_READY: 503,
};

/** The HTTP status of an error code (500 for codes outside the table). */
export function httpStatusOf(code: string): number {
  return Object.hasOwn(HTTP_STATUS_OF_CODE, code) ? HTTP_STATUS_OF_CODE[code] : 500;
}

/** Fastify/ajv's own error codes, mapped to the table's. */
export function apiCodeOfFastify(code: string | undefined, statusCode: number | undefined): string {
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || statusCode === 413) return 'PAYLOAD_TOO_LARGE';
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || statusCode === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (code === 'FST_ERR_VALIDATION') return 'VALIDATION_FAILED';
  if (statusCode === 404) return 'NOT_FOUND';
  return 'BAD_REQUEST';
}
