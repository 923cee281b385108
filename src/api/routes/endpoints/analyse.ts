import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { endpointParams } from '../../params';
import { consoleEndpoint, consoleOptions, queryRows, withSession } from '../../executor';
import { SLOW_QUERY_ORDER, slowQueriesSql, SlowQueryOrder } from '../../../domain/pgsql/introspection';
import { SYSTEM_ROLE } from '../../../domain/roles';

const slowQuery = z
  .object({ query: z.string(), calls: z.number(), mean_time_ms: z.number(), total_time_ms: z.number(), rows: z.number(), cache_hit_pct: z.number().nullable(), query_id: z.string(), database: z.string().nullable(), role: z.string().nullable() })
  .openapi('SlowQuery');

export function registerAnalyseRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/analyse';
  defineRoute(router, registry, deps, {
    method: 'get',
    path: `${base}/slow-queries`,
    summary: 'Top statements from pg_stat_statements (loaded on every compute; kept across suspend/resume), not counting the platform\'s own',
    tags: ['Query analysis'],
    action: 'schema.read',
    params: endpointParams,
    query: z.object({
      order_by: z.enum(Object.keys(SLOW_QUERY_ORDER) as [SlowQueryOrder, ...SlowQueryOrder[]]).default('total_time'),
      limit: z.coerce.number().int().min(1).max(500).default(30),
    }),
    responses: { 200: { description: 'Statements, slowest first', schema: z.array(slowQuery) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const rows = await withSession(deps, auth, ep, consoleOptions(deps), (s) => queryRows<Record<string, string | null>>(s, slowQueriesSql(query.order_by, query.limit, SYSTEM_ROLE)));
      const num = (v: string | null) => (v === null ? null : Number(v));
      ctx.body = rows.map((r) => ({
        query: r.query,
        calls: Number(r.calls),
        mean_time_ms: Number(r.mean_time_ms),
        total_time_ms: Number(r.total_time_ms),
        rows: Number(r.rows),
        cache_hit_pct: num(r.cache_hit_pct),
        query_id: r.query_id,
        database: r.database,
        role: r.role,
      }));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/reset-stats`,
    summary: 'Reset every pg_stat_statements counter of the compute',
    tags: ['Query analysis'],
    action: 'endpoint.update',
    params: endpointParams,
    responses: { 200: { description: 'Reset', schema: z.object({ ok: z.literal(true) }) }, 403: { description: 'A compute made before this route existed (cloud_admin was not granted the reset)', schema: errorEnvelope } },
    handler: async (ctx, { params, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      await withSession(deps, auth, ep, consoleOptions(deps), (s) => queryRows(s, { text: 'SELECT pg_stat_statements_reset()' }));
      ctx.body = { ok: true as const };
    },
  });
}
