import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { liveActivity, liveProgress } from '../operationRunner';
import { answerPage, pagination } from '../pagination';
import { operationParams, projectIdParam } from '../params';
import { operationSchema, operationView } from '../views/operations';
import { countOperations, findOperation, listOperations, projectKnownToOrg } from '../../db/queries/operations';

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
    responses: { 200: { description: 'Operations', schema: z.array(operationSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      // Like every other route: a project the org never had is not found, not an empty list.
      if (!(await projectKnownToOrg(deps.db, auth.orgId, params.project_id))) throw notFound('project', params.project_id);
      const rows = await listOperations(deps.db, auth.orgId, params.project_id, query);
      const views = await Promise.all(rows.map(async (op) => operationView(op, await liveProgress(deps, op), await liveActivity(deps, op))));
      answerPage(ctx, await countOperations(deps.db, auth.orgId, params.project_id), views);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/operations/{operation_id}',
    summary: 'Get an operation: status, current step, error',
    tags: ['Operations'],
    action: 'operation.read',
    params: operationParams,
    responses: { 200: { description: 'The operation', schema: operationSchema } },
    handler: async (ctx, { params, auth }) => {
      const op = await findOperation(deps.db, auth.orgId, params.project_id, params.operation_id);
      if (!op) throw notFound('operation', params.operation_id);
      const [progress, activity] = await Promise.all([liveProgress(deps, op), liveActivity(deps, op)]);
      ctx.body = operationView(op, progress, activity);
    },
  });
}
