import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, notFound } from '../../errors';
import { endpointParams, identifier } from '../../params';
import { consoleEndpoint, consoleOptions, queryRows, withSession } from '../../executor';
import { createDatabaseSql, DEFAULT_DATABASE, dropDatabaseSql, listDatabasesSql } from '../../../domain/pgsql/databases';

const databaseSchema = z.object({ name: z.string(), encoding: z.string(), size_bytes: z.number(), owner: z.string() }).openapi('Database');

export function registerDatabaseRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/databases';
  defineRoute(router, registry, deps, {
    method: 'get',
    path: base,
    summary: 'List databases (not the templates), with size in bytes',
    tags: ['Databases'],
    action: 'schema.read',
    params: endpointParams,
    query: pagination,
    responses: { 200: { description: 'Databases', schema: z.array(databaseSchema) } },
    handler: async (ctx, { params, auth, query }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const rows = await withSession(deps, auth, ep, consoleOptions(deps), (s) => queryRows<{ name: string; encoding: string; size_bytes: string; owner: string }>(s, listDatabasesSql()));
      answerSlice(ctx, query, rows.map((r) => ({ ...r, size_bytes: Number(r.size_bytes) })));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: base,
    summary: 'Create a database, owned by cloud_admin',
    tags: ['Databases'],
    action: 'database.write',
    params: endpointParams,
    body: z.object({ name: identifier('name') }),
    responses: {
      201: { description: 'Created', schema: z.object({ name: z.string() }) },
      409: { description: 'A database of that name exists (42P04)', schema: errorEnvelope },
    },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      await withSession(deps, auth, ep, consoleOptions(deps), (s) => queryRows(s, createDatabaseSql(body.name)));
      ctx.status = 201;
      ctx.body = { name: body.name };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/{name}`,
    summary: 'Drop a database (refused while other sessions use it; never the default database postgres)',
    tags: ['Databases'],
    action: 'database.write',
    params: endpointParams.extend({ name: identifier('name') }),
    responses: {
      204: { description: 'Dropped' },
      404: { description: 'No such database', schema: errorEnvelope },
      409: { description: 'The default database, or sessions are connected to it (55006)', schema: errorEnvelope },
    },
    handler: async (ctx, { params, auth }) => {
      if (params.name === DEFAULT_DATABASE) throw new ApiError(409, 'conflict', `${DEFAULT_DATABASE} is the endpoint's default database; it cannot be dropped`);
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      await withSession(deps, auth, ep, consoleOptions(deps), async (s) => {
        const exists = await queryRows(s, { text: 'SELECT 1 FROM pg_database WHERE datname = $1 AND NOT datistemplate', values: [params.name] });
        if (!exists.length) throw notFound('database', params.name);
        // The executor's own idle sessions in it would make the drop fail.
        await deps.computePools.forget(ep.id, params.name);
        await queryRows(s, dropDatabaseSql(params.name));
      });
      ctx.status = 204;
    },
  });
}
