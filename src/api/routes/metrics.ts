import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { pagination } from '../pagination';
import { findProject, projectIdParam } from './projects';

const computeEvent = z
  .object({
    timestamp: z.string(),
    endpoint_id: z.string(),
    event: z.enum(['start', 'suspend', 'resume', 'resize', 'stop']),
    duration_s: z.number().nullable(),
    detail: z.unknown(),
  })
  .openapi('ComputeEvent');

export function registerMetricsRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics/compute-history',
    summary: 'Compute history: starts, suspends (with running time), resumes and resizes, newest first',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Events', schema: z.array(computeEvent) } },
    handler: async (ctx, { params, query, auth }) => {
      await findProject(deps, auth, params.project_id);
      const rows = await deps.db
        .selectFrom('compute_events')
        .selectAll()
        .where('project_id', '=', params.project_id)
        .orderBy('id', 'desc')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      ctx.body = rows.map((r) => ({
        timestamp: new Date(r.at).toISOString(),
        endpoint_id: r.endpoint_id,
        event: r.event,
        duration_s: r.duration_s,
        detail: r.detail ?? null,
      }));
    },
  });
}
