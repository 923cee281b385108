import type { ZodError } from 'zod';
import { TemporalUnavailableError } from '../operations/client';

/** The one error shape every route answers with: {"error":{"code","message","details"}}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: unknown) => new ApiError(400, 'bad_request', message, details);
export const unauthorized = (message = 'missing or invalid API key') => new ApiError(401, 'unauthorized', message);
export const forbidden = (message: string) => new ApiError(403, 'forbidden', message);
export const notFound = (what: string, id?: string) =>
  new ApiError(404, 'not_found', id ? `${what} ${id} not found` : `${what} not found`);
export const conflict = (message: string, details?: unknown) => new ApiError(409, 'conflict', message, details);

/** A refusal of an organization rule (domain/members) as the API answers it. */
export function refusalError(r: { status: number; message: string }): ApiError {
  const code = r.status === 403 ? 'forbidden' : r.status === 409 ? 'conflict' : 'validation_failed';
  return new ApiError(r.status, code, r.message);
}

export function validationError(where: 'body' | 'query' | 'path', err: ZodError): ApiError {
  const fields = err.issues.map((i) => ({
    field: [where, ...i.path.map(String)].join('.'),
    message: i.message,
    code: i.code,
  }));
  const first = fields[0];
  return new ApiError(422, 'validation_failed', first ? `${first.field}: ${first.message}` : 'validation failed', { fields });
}

/** gRPC status codes that mean "the service is not reachable now", not "the request is wrong". */
const GRPC_UNREACHABLE = new Map([
  [14, 'UNAVAILABLE'],
  [4, 'DEADLINE_EXCEEDED'],
]);

/** Seconds a client should wait before retrying a request refused because Temporal is down. */
export const TEMPORAL_RETRY_AFTER_S = 5;

/**
 * A Temporal call that failed because Temporal is unreachable (server down or restarting, or no
 * answer within the call's deadline): a gRPC UNAVAILABLE or DEADLINE_EXCEEDED anywhere in the
 * cause chain (the client wraps it in a ServiceError). Answered 503 with Retry-After instead of
 * 500. (A start that timed out may still have reached Temporal; a retry then answers 409 and
 * the operation shows under the project.)
 */
export function temporalUnavailable(err: unknown): ApiError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e instanceof Error; depth++) {
    const { code, details, metadata } = e as Error & { code?: unknown; details?: unknown; metadata?: unknown };
    const grpc = typeof details === 'string' && typeof metadata === 'object' && metadata !== null;
    const status = e instanceof TemporalUnavailableError ? 'DOWN' : grpc && typeof code === 'number' ? GRPC_UNREACHABLE.get(code) : undefined;
    if (status) {
      return new ApiError(
        503,
        'temporal_unavailable',
        `the workflow service (Temporal) is unreachable; retry in ${TEMPORAL_RETRY_AFTER_S} s`,
        { component: 'temporal', reason: status, cause: (grpc ? (details as string) : e.message).slice(0, 300) },
        { 'Retry-After': String(TEMPORAL_RETRY_AFTER_S) },
      );
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
