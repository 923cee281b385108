import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import type { AuthContext } from '../../auth';
import { ApiError, notFound } from '../../errors';
import { databaseName, databaseQuery, endpointParams, identifier } from '../../params';
import { consoleEndpoint, consoleOptions, queryRows, withSession } from '../../executor';
import { requireRunningCompute } from '../../compute';
import { runOperation } from '../../operationRunner';
import { createExtensionSql, dropExtensionSql, listExtensionsSql, PLATFORM_EXTENSIONS } from '../../../domain/pgsql/extensions';
import { computeDataId } from '../../../domain/computeData';
import { sqlErrorAnswer } from '../../../domain/sqlstate';
import { extensionManage } from '../../../operations';
import type { EndpointListRow } from '../../../db/queries/endpoints';

interface ExtensionRow {
  name: string;
  default_version: string | null;
  installed_version: string | null;
  comment: string | null;
  trusted: boolean;
}

const extensionSchema = z
  .object({
    name: z.string(),
    installed: z.boolean(),
    installed_version: z.string().nullable(),
    default_version: z.string().nullable(),
    description: z.string().nullable(),
    installable: z.boolean().openapi({ description: 'cloud_admin may create it (trusted), or the platform creates it on its behalf' }),
  })
  .openapi('Extension');

function view(r: ExtensionRow) {
  return {
    name: r.name,
    installed: r.installed_version !== null,
    installed_version: r.installed_version,
    default_version: r.default_version,
    description: r.comment,
    installable: r.trusted || PLATFORM_EXTENSIONS.includes(r.name),
  };
}

/**
 * Extensions that are not trusted are created (and dropped) by the platform's superuser on the
 * compute's host, through a workflow; the rest by cloud_admin, through the executor.
 */
async function byPlatform(deps: ApiDeps, auth: AuthContext, ep: EndpointListRow, database: string, name: string, action: 'create' | 'drop'): Promise<void> {
  const running = await requireRunningCompute(deps, auth, ep);
  try {
    const outcome = await runOperation(deps, auth, extensionManage, {
      projectId: ep.project_id,
      branchId: ep.branch_id,
      hostId: ep.host_id,
      spec: { endpointId: ep.id, branchId: computeDataId(ep), port: running.port, projectId: ep.project_id },
      database,
      name,
      action,
    });
    if (!outcome.done) throw new ApiError(503, 'extension_pending', `the ${action} of ${name} is still running`, { operation_id: outcome.operationId }, { 'Retry-After': '5' });
  } catch (err) {
    const sqlstate = ((err as ApiError).details as { failure?: { sqlstate?: string } } | undefined)?.failure?.sqlstate;
    if (err instanceof ApiError && sqlstate) {
      const a = sqlErrorAnswer(sqlstate);
      throw new ApiError(a.status, a.code, err.message, { sqlstate });
    }
    throw err;
  }
}

export function registerExtensionRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/extensions';

  defineRoute(router, registry, deps, {
    method: 'get',
    path: base,
    summary: "Every extension this compute's Postgres has (its own catalog), installed or not, with versions and whether it can be installed here",
    tags: ['Extensions'],
    action: 'schema.read',
    params: endpointParams,
    query: databaseQuery.extend(pagination.shape),
    responses: { 200: { description: 'Extensions', schema: z.array(extensionSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      answerSlice(ctx, query, (await withSession(deps, auth, ep, consoleOptions(deps, query.database), (s) => queryRows<ExtensionRow>(s, listExtensionsSql()))).map(view));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: base,
    summary: 'Install an extension the server has: trusted ones as cloud_admin, a few others (vector, pg_buffercache, …) by the platform',
    tags: ['Extensions'],
    action: 'extension.write',
    params: endpointParams,
    body: z.object({ name: identifier('name'), database: databaseName }),
    responses: {
      201: { description: 'Installed (or already was)', schema: z.object({ name: z.string(), installed: z.literal(true), version: z.string().nullable() }) },
      403: { description: 'The server has it, but it needs a superuser and is not one the platform installs (file or network access, raw storage)', schema: errorEnvelope },
      404: { description: "This compute's Postgres has no such extension", schema: errorEnvelope },
    },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const opts = consoleOptions(deps, body.database);
      const list = await withSession(deps, auth, ep, opts, (s) => queryRows<ExtensionRow>(s, listExtensionsSql()));
      const ext = list.find((r) => r.name === body.name);
      if (!ext) throw notFound('extension', `${body.name} (not available on Postgres ${ep.pg_version} here)`);
      if (ext.trusted) await withSession(deps, auth, ep, opts, (s) => queryRows(s, createExtensionSql(body.name)));
      else if (PLATFORM_EXTENSIONS.includes(body.name)) await byPlatform(deps, auth, ep, body.database, body.name, 'create');
      else throw new ApiError(403, 'forbidden', `${body.name} needs a superuser and gives access beyond the database (files, network or raw storage); it is not installed on request`);
      const after = await withSession(deps, auth, ep, opts, (s) => queryRows<ExtensionRow>(s, listExtensionsSql()));
      ctx.status = 201;
      ctx.body = { name: body.name, installed: true as const, version: after.find((r) => r.name === body.name)?.installed_version ?? null };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/{name}`,
    summary: 'Uninstall an extension (refused with the dependents when objects use it: 2BP01)',
    tags: ['Extensions'],
    action: 'extension.write',
    params: endpointParams.extend({ name: identifier('name') }),
    query: databaseQuery,
    responses: { 204: { description: 'Uninstalled' }, 404: { description: 'Not installed', schema: errorEnvelope }, 409: { description: 'Objects depend on it', schema: errorEnvelope } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const opts = consoleOptions(deps, query.database);
      const list = await withSession(deps, auth, ep, opts, (s) => queryRows<ExtensionRow>(s, listExtensionsSql()));
      const ext = list.find((r) => r.name === params.name);
      if (!ext?.installed_version) throw notFound('installed extension', params.name);
      if (params.name === 'plpgsql') throw new ApiError(409, 'conflict', 'plpgsql is part of every database; it is not uninstalled');
      // Who created it decides who may drop it: the platform for the ones it installs.
      const owner = await withSession(deps, auth, ep, opts, (s) => queryRows<{ mine: boolean }>(s, { text: 'SELECT pg_has_role(extowner, \'USAGE\') AS mine FROM pg_extension WHERE extname = $1', values: [params.name] }));
      if (owner[0]?.mine) await withSession(deps, auth, ep, opts, (s) => queryRows(s, dropExtensionSql(params.name)));
      else if (PLATFORM_EXTENSIONS.includes(params.name)) await byPlatform(deps, auth, ep, query.database, params.name, 'drop');
      else throw new ApiError(403, 'forbidden', `${params.name} was not installed through the platform; it is not uninstalled on request`);
      ctx.status = 204;
    },
  });
}
