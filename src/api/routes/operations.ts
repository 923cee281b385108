import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { idPattern } from '../../domain/ids';
import { liveProgress, operationView } from '../operations';
import { pagination } from '../pagination';
import { projectIdParam } from './projects';

const operation = z
  .object({
    id: z.string(),
    project_id: z.string(),
    kind: z.string(),
    status: z.enum(['running', 'succeeded', 'failed']),
    step: z.string().nullable(),
    steps: z.array(z.string()).optional(),
    error: z.unknown(),
    result: z.unknown(),
    workflow_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Operation');

/**
 * Operations are scoped by their own org_id, not through the project: a create's operation is
 * pollable before the project row exists, and a failed create's after it is gone.
 */
export function registerOperationRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/operations',
    summary: 'List operations of a project, newest first',
    tags: ['Operations'],
    action: 'operation.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Operations', schema: z.array(operation) } },
    handler: async (ctx, { params, query, auth }) => {
      const rows = await deps.db
        .selectFrom('operations')
        .selectAll()
        .where('project_id', '=', params.project_id)
        .where('org_id', '=', auth.orgId)
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      ctx.body = await Promise.all(rows.map(async (op) => operationView(op, await liveProgress(deps, op))));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/operations/{operation_id}',
    summary: 'Get an operation: status, current step, error',
    tags: ['Operations'],
    action: 'operation.read',
    params: projectIdParam.extend({ operation_id: z.string().regex(idPattern('operation'), 'not an operation id') }),
    responses: { 200: { description: 'The operation', schema: operation } },
    handler: async (ctx, { params, auth }) => {
      const op = await deps.db
        .selectFrom('operations')
        .selectAll()
        .where('id', '=', params.operation_id)
        .where('project_id', '=', params.project_id)
        .where('org_id', '=', auth.orgId)
        .executeTakeFirst();
      if (!op) throw notFound('operation', params.operation_id);
      ctx.body = operationView(op, await liveProgress(deps, op));
    },
  });
}
