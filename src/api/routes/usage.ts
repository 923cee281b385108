import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { projectIdParam } from '../params';
import { requireProject } from '../lookup';
import { listProjects } from '../../db/queries/projects';
import { orgPlan } from '../../db/queries/organizations';
import { computeEventsOf, endpointSizes, storageBytes, transferBytes } from '../../db/queries/usage';
import { computeHours, periodBounds, usagePeriod } from '../../domain/usage';
import type { Db } from '../../db';

const period = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be YYYY-MM')
  .optional()
  .openapi({ description: 'UTC month; default the current one' });

const usageSchema = z
  .object({
    period: z.string(),
    compute_hours: z.number().openapi({ description: 'Running time weighted by compute units (1 CU for an hour = 1), from the compute events' }),
    compute_wall_hours: z.number(),
    storage_gb: z.number().openapi({ description: "Databases' size now, from the latest metrics snapshot of each primary compute" }),
    transfer_total_gb: z.number().openapi({ description: 'Bytes the proxy relayed both ways in the period' }),
  })
  .openapi('Usage');

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

async function usageOf(db: Db, projectIds: string[], p: string) {
  const bounds = periodBounds(p);
  const [events, sizes, bytes, storage] = await Promise.all([computeEventsOf(db, projectIds, bounds.end), endpointSizes(db, projectIds), transferBytes(db, projectIds, p), storageBytes(db, projectIds)]);
  const hours = computeHours(events, bounds, new Date(), (id) => sizes.get(id) ?? 0.25);
  return { period: p, compute_hours: round(hours.cuHours, 6), compute_wall_hours: round(hours.hours, 6), storage_gb: round(storage / 1e9, 6), transfer_total_gb: round(bytes / 1e9, 6) };
}

export function registerUsageRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/usage',
    summary: 'Usage of one project in a month: CU-weighted compute hours, storage, transfer through the proxy',
    tags: ['Usage'],
    action: 'metrics.read',
    params: projectIdParam,
    query: z.object({ period }),
    responses: { 200: { description: 'Usage', schema: usageSchema } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      ctx.body = await usageOf(deps.db, [params.project_id], query.period ?? usagePeriod(new Date()));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/usage',
    summary: "The organization's usage in a month, its plan, and the cost estimated from the plan's prices",
    tags: ['Usage'],
    action: 'metrics.read',
    query: z.object({ period }),
    responses: {
      200: {
        description: 'Usage, plan and estimate',
        schema: z.object({
          plan: z.object({ name: z.string(), cu_hour_usd: z.number(), storage_gb_month_usd: z.number(), transfer_gb_usd: z.number() }),
          total: usageSchema,
          projects: z.array(usageSchema.extend({ project_id: z.string() })),
          estimated_cost: z.object({ compute_usd: z.number(), storage_usd: z.number(), transfer_usd: z.number(), total_usd: z.number() }),
        }),
      },
    },
    handler: async (ctx, { query, auth }) => {
      const p = query.period ?? usagePeriod(new Date());
      const projects = await listProjects(deps.db, auth.orgId, { limit: 10_000, offset: 0 });
      const per = await Promise.all(projects.map(async (pr) => ({ project_id: pr.id, ...(await usageOf(deps.db, [pr.id], p)) })));
      const sum = (k: 'compute_hours' | 'compute_wall_hours' | 'storage_gb' | 'transfer_total_gb') => round(per.reduce((a, x) => a + x[k], 0), 6);
      const total = { period: p, compute_hours: sum('compute_hours'), compute_wall_hours: sum('compute_wall_hours'), storage_gb: sum('storage_gb'), transfer_total_gb: sum('transfer_total_gb') };
      const plan = await orgPlan(deps.db, auth.orgId);
      const cost = {
        compute_usd: round(total.compute_hours * plan.cu_hour_usd, 2),
        storage_usd: round(total.storage_gb * plan.storage_gb_month_usd, 2),
        transfer_usd: round(total.transfer_total_gb * plan.transfer_gb_usd, 2),
      };
      ctx.body = {
        plan: { name: plan.name, cu_hour_usd: plan.cu_hour_usd, storage_gb_month_usd: plan.storage_gb_month_usd, transfer_gb_usd: plan.transfer_gb_usd },
        total,
        projects: per,
        estimated_cost: { ...cost, total_usd: round(cost.compute_usd + cost.storage_usd + cost.transfer_usd, 2) },
      };
    },
  });
}
