import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { answerPage, pagination } from '../pagination';
import { projectIdParam } from '../params';
import { requireProject } from '../lookup';
import { computeEventSchema, computeEventView } from '../views/metrics';
import { countComputeEvents, listComputeEvents } from '../../db/queries/computeEvents';

export function registerMetricsRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics/compute-history',
    summary: 'Compute history: starts, suspends (with running time), resumes, resizes and crash restarts, newest first',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Events', schema: z.array(computeEventSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const rows = await listComputeEvents(deps.db, params.project_id, query);
      answerPage(ctx, await countComputeEvents(deps.db, params.project_id), rows.map(computeEventView));
    },
  });
}
