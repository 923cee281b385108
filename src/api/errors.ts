import type { ZodError } from 'zod';

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

export function validationError(where: 'body' | 'query' | 'path', err: ZodError): ApiError {
  const fields = err.issues.map((i) => ({
    field: [where, ...i.path.map(String)].join('.'),
    message: i.message,
    code: i.code,
  }));
  const first = fields[0];
  return new ApiError(422, 'validation_failed', first ? `${first.field}: ${first.message}` : 'validation failed', { fields });
}
