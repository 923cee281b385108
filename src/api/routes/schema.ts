import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute, errorEnvelope } from '../route';
import type { ApiDeps } from '../deps';
import type { AuthContext } from '../auth';
import { ApiError, notFound } from '../errors';
import { identifier, projectIdParam } from '../params';
import { requireBranch, requireEndpoint, requireProject } from '../lookup';
import { consoleEndpoint, consoleOptions, queryRows, withSession } from '../executor';
import { listDatabasesSql } from '../../domain/pgsql/databases';
import { listSchemasSql, listTablesWithColumnsSql } from '../../domain/pgsql/introspection';
import { ENDPOINT_ID_RE, idPattern } from '../../domain/ids';

const column = z.object({ name: z.string(), type: z.string(), nullable: z.boolean(), default: z.string().nullable() });

/** The endpoint a project-level read looks through: the one named, the branch's, or the primary's. */
async function pickEndpoint(deps: ApiDeps, auth: AuthContext, projectId: string, q: { endpoint_id?: string; branch_id?: string }) {
  if (q.endpoint_id && q.branch_id) throw new ApiError(422, 'validation_failed', 'give endpoint_id or branch_id, not both');
  if (q.endpoint_id) return requireEndpoint(deps, auth, projectId, q.endpoint_id);
  let endpointId: string | null | undefined;
  if (q.branch_id) endpointId = (await requireBranch(deps, auth, projectId, q.branch_id)).compute_id;
  else endpointId = (await requireProject(deps, auth, projectId)).endpoint_id;
  if (!endpointId) throw notFound('endpoint of the branch');
  return consoleEndpoint(deps, auth, projectId, endpointId);
}

export function registerSchemaRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/schema',
    summary: 'Browse: no database = databases; ?database= = its schemas; &schema= = its tables with columns. ?branch_id= or ?endpoint_id= picks the compute (default the primary branch\'s)',
    tags: ['Schema'],
    action: 'schema.read',
    params: projectIdParam,
    query: z.object({
      database: identifier('database').optional(),
      schema: identifier('schema').optional(),
      branch_id: z.string().regex(idPattern('branch'), 'not a branch id').optional(),
      endpoint_id: z.string().regex(ENDPOINT_ID_RE, 'not an endpoint id').optional(),
    }),
    responses: {
      200: {
        description: '{type, items}',
        schema: z.union([
          z.object({ type: z.literal('databases'), items: z.array(z.object({ name: z.string(), encoding: z.string(), size_bytes: z.number(), owner: z.string() })) }),
          z.object({ type: z.literal('schemas'), items: z.array(z.object({ name: z.string(), owner: z.string() })) }),
          z.object({ type: z.literal('tables'), items: z.array(z.object({ name: z.string(), kind: z.string(), columns: z.array(column) })) }),
        ]),
      },
      404: { description: 'No such project, branch, endpoint or database', schema: errorEnvelope },
    },
    handler: async (ctx, { params, query, auth }) => {
      if (query.schema && !query.database) throw new ApiError(422, 'validation_failed', 'schema needs database');
      const ep = await pickEndpoint(deps, auth, params.project_id, query);
      ctx.body = await withSession(deps, auth, ep, consoleOptions(deps, query.database), async (s) => {
        if (!query.database) {
          const rows = await queryRows<{ name: string; encoding: string; size_bytes: string; owner: string }>(s, listDatabasesSql());
          return { type: 'databases' as const, items: rows.map((r) => ({ ...r, size_bytes: Number(r.size_bytes) })) };
        }
        if (!query.schema) return { type: 'schemas' as const, items: await queryRows<{ name: string; owner: string }>(s, listSchemasSql()) };
        const exists = await queryRows(s, { text: 'SELECT 1 FROM pg_namespace WHERE nspname = $1', values: [query.schema] });
        if (!exists.length) throw notFound('schema', query.schema);
        return { type: 'tables' as const, items: await queryRows<{ name: string; kind: string; columns: z.infer<typeof column>[] }>(s, listTablesWithColumnsSql(query.schema)) };
      });
    },
  });
}
