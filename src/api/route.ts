import type Koa from 'koa';
import type Router from '@koa/router';
import { z } from 'zod';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import './zod';
import { POLICY, type Action } from '../domain/rbac';
import { ApiError, forbidden, notFound, temporalUnavailable, validationError } from './errors';
import { projectScopeRefusal } from '../domain/keyScope';
import { auditRequest, wantsAudit } from './audit';
import { withIdempotency } from './idempotency';
import { authorize, AuthContext } from './auth';
import type { ApiDeps } from './deps';


export const errorEnvelope = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: Method;
  /** OpenAPI style: /v1/projects/{project_id} */
  path: string;
  summary: string;
  tags: string[];
  /** null = public (no API key). */
  action: Action | null;
  params?: P;
  query?: Q;
  body?: B;
  /** A schema is JSON unless `mediaType` names another type (e.g. application/sql, described as a string). */
  responses: Record<number, { description: string; schema?: z.ZodType; mediaType?: string }>;
  handler: (
    ctx: Koa.Context,
    input: { params: z.infer<P>; query: z.infer<Q>; body: z.infer<B>; auth: AuthContext },
  ) => Promise<void>;
}

/**
 * Declares a route once: the same zod schemas validate the request and describe it in the
 * OpenAPI document, and the route's action is checked against the RBAC policy table.
 */
export function defineRoute<P extends z.ZodType = z.ZodObject<{}>, Q extends z.ZodType = z.ZodObject<{}>, B extends z.ZodType = z.ZodUndefined>(
  router: Router,
  registry: OpenAPIRegistry,
  deps: ApiDeps,
  spec: RouteSpec<P, Q, B>,
): void {
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    responses[status] = r.schema ? { description: r.description, content: { [r.mediaType ?? 'application/json']: { schema: r.schema } } } : { description: r.description };
  }
  // Every error a route can answer is in the document: malformed JSON and oversized bodies where
  // there is a body, and 409 wherever an operation may hold the resource.
  const common = [
    ...(spec.action ? [401, 403, 404, 422, 429] : [422]),
    ...(spec.body ? [400, 413] : []),
    ...(spec.method !== 'get' && spec.action ? [409, 503] : []),
  ];
  for (const status of common) {
    responses[status] ??= { description: 'Error', content: { 'application/json': { schema: errorEnvelope } } };
  }
  const idempotent = spec.method === 'post' && spec.action !== null;
  registry.registerPath({
    method: spec.method,
    path: spec.path,
    summary: spec.summary,
    tags: spec.tags,
    security: spec.action ? [{ bearerAuth: [] }] : [],
    // The policy in the document: what the role matrix test and a reader check a route against.
    ...(spec.action ? { 'x-lampion-action': spec.action, 'x-lampion-min-role': POLICY[spec.action] } : {}),
    request: {
      params: spec.params as any,
      query: spec.query as any,
      headers: idempotent ? (idempotencyHeader as any) : undefined,
      body: spec.body ? { content: { 'application/json': { schema: spec.body } }, required: true } : undefined,
    },
    responses: responses as any,
  });

  const koaPath = spec.path.replace(/\{(\w+)\}/g, ':$1');
  const audited = spec.method !== 'get' && spec.action !== null;
  router[spec.method](koaPath, async (ctx) => {
    try {
      const auth = spec.action ? await authorize(ctx, deps, spec.action) : (undefined as unknown as AuthContext);
      const params = parse('path', spec.params, ctx.params ?? {});
      if (auth?.projectIds) {
        const refused = projectScopeRefusal({ method: spec.method, path: spec.path, projectId: (params as { project_id?: string }).project_id, projectIds: auth.projectIds });
        if (refused?.status === 404) throw notFound('project', (params as { project_id?: string }).project_id);
        if (refused) throw forbidden(refused.message);
      }
      const query = parse('query', spec.query, ctx.query ?? {});
      const body = spec.body ? parse('body', spec.body, (ctx.request as any).body ?? {}) : undefined;
      const run = () => spec.handler(ctx, { params, query, body: body as any, auth });
      await (idempotent && ctx.get('idempotency-key') ? withIdempotency(deps.db, ctx, auth, body, run) : run());
    } catch (err) {
      if (audited && wantsAudit(ctx)) await auditRequest(deps.db, ctx, { action: spec.action!, status: err instanceof ApiError ? err.status : (temporalUnavailable(err)?.status ?? 500), params: ctx.params });
      throw err;
    }
    if (audited && wantsAudit(ctx)) await auditRequest(deps.db, ctx, { action: spec.action!, status: ctx.status, params: ctx.params });
  });
}

const idempotencyHeader = z.object({
  'idempotency-key': z
    .string()
    .optional()
    .openapi({ description: 'Retrying with the same key returns the first answer instead of doing the work again (kept 24 h); the same key with another body is 422' }),
});

/** The path of the first string holding a NUL byte (Postgres cannot store one in text), or undefined. */
function nulAt(v: unknown, path: string[] = []): string[] | undefined {
  if (typeof v === 'string') return v.includes('\u0000') ? path : undefined;
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const found = nulAt(x, [...path, k]);
      if (found) return found;
    }
  }
  return undefined;
}

function parse<T extends z.ZodType>(where: 'body' | 'query' | 'path', schema: T | undefined, value: unknown): z.infer<T> {
  if (!schema) return {} as z.infer<T>;

  const r = schema.safeParse(value);
  if (!r.success) throw validationError(where, r.error);
  // A net under every field's own rules: a NUL byte anywhere is refused, never a 500 from the catalog.
  const nul = nulAt(r.data);
  if (nul) {
    const field = [where, ...nul].join('.');
    throw new ApiError(422, 'validation_failed', `${field}: must not contain NUL bytes`, { fields: [{ field, message: 'must not contain NUL bytes', code: 'custom' }] });
  }
  return r.data;
}
