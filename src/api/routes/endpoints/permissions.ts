import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { databaseName, databaseQuery, endpointParams, identifier } from '../../params';
import { consoleEndpoint, consoleOptions, queryRows, withSession } from '../../executor';
import { grantSql, listGrantableTablesSql, listGrantsSql, revokeSql, TABLE_PRIVILEGES } from '../../../domain/pgsql/permissions';

const grantBody = z.object({
  role: identifier('role'),
  schema: identifier('schema').default('public'),
  table: identifier('table'),
  privileges: z.array(z.enum(TABLE_PRIVILEGES)).min(1).max(TABLE_PRIVILEGES.length),
  database: databaseName,
});

export function registerPermissionRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/permissions';
  defineRoute(router, registry, deps, {
    method: 'get',
    path: base,
    summary: 'Table-level grants to roles other than the owner (PUBLIC included)',
    tags: ['Permissions'],
    action: 'schema.read',
    params: endpointParams,
    query: databaseQuery.extend(pagination.shape),
    responses: { 200: { description: 'Grants', schema: z.array(z.object({ table: z.string(), role: z.string(), privileges: z.array(z.string()) })) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const rows = await withSession(deps, auth, ep, consoleOptions(deps, query.database), (s) => queryRows<{ schema: string; table: string; role: string; privileges: string[] }>(s, listGrantsSql()));
      answerSlice(ctx, query, rows.map((r) => ({ table: `${r.schema}.${r.table}`, role: r.role, privileges: r.privileges })));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: `${base}/tables`,
    summary: 'Tables (and views) privileges can be granted on',
    tags: ['Permissions'],
    action: 'schema.read',
    params: endpointParams,
    query: databaseQuery.extend(pagination.shape),
    responses: { 200: { description: 'Tables', schema: z.array(z.object({ schema: z.string(), table: z.string() })) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      answerSlice(ctx, query, await withSession(deps, auth, ep, consoleOptions(deps, query.database), (s) => queryRows(s, listGrantableTablesSql())));
    },
  });

  for (const verb of ['grant', 'revoke'] as const) {
    defineRoute(router, registry, deps, {
      method: 'post',
      path: `${base}/${verb}`,
      summary: `${verb === 'grant' ? 'Grant' : 'Revoke'} table privileges (${TABLE_PRIVILEGES.join(', ')}) ${verb === 'grant' ? 'to' : 'from'} a role`,
      tags: ['Permissions'],
      action: 'permission.write',
      params: endpointParams,
      body: grantBody,
      responses: {
        200: { description: 'Done', schema: z.object({ role: z.string(), table: z.string(), [verb === 'grant' ? 'granted' : 'revoked']: z.array(z.string()) }) },
        404: { description: 'No such table (42P01) or role (42704)', schema: errorEnvelope },
      },
      handler: async (ctx, { params, body, auth }) => {
        const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
        const spec = { schema: body.schema, table: body.table, role: body.role, privileges: body.privileges };
        await withSession(deps, auth, ep, consoleOptions(deps, body.database), (s) => queryRows(s, verb === 'grant' ? grantSql(spec) : revokeSql(spec)));
        ctx.body = { role: body.role, table: `${body.schema}.${body.table}`, [verb === 'grant' ? 'granted' : 'revoked']: [...new Set(body.privileges)] };
      },
    });
  }
}
