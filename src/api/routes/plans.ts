import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../pagination';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { PLANS } from '../../domain/plans';
import { orgPlan } from '../../db/queries/organizations';

const planSchema = z
  .object({
    name: z.string(),
    max_projects: z.number().nullable().openapi({ description: 'null: no limit' }),
    max_branches_per_project: z.number().nullable(),
    max_compute_cu: z.number(),
    cu_hour_usd: z.number(),
    storage_gb_month_usd: z.number(),
    transfer_gb_usd: z.number(),
    current: z.boolean().openapi({ description: "The caller's organization is on it" }),
  })
  .openapi('Plan');

export function registerPlanRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/plans',
    summary: 'Plans with their limits (enforced where the resource is made) and prices (used by the usage estimate)',
    tags: ['Plans'],
    action: 'project.list',
    query: pagination,
    responses: { 200: { description: 'Plans', schema: z.array(planSchema) } },
    handler: async (ctx, { auth, query }) => {
      const mine = await orgPlan(deps.db, auth.orgId);
      answerSlice(ctx, query, PLANS.map((p) => ({ ...p, current: p.name === mine.name })));
    },
  });
}
