import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, conflict, notFound } from '../errors';
import { answerAccepted, runOperation } from '../operations';
import { findProject, projectIdParam } from './projects';
import type { AuthContext } from '../auth';
import type { EndpointRow } from '../../db';
import { ENDPOINT_ID_RE } from '../../domain/ids';
import { hasRole, POLICY } from '../../domain/rbac';
import { COMPUTE_SIZES, isComputeSize, validateCuRange } from '../../domain/sizing';
import { parseAllowlist } from '../../domain/allowlist';
import { proxyConnectionString } from '../../domain/connectionString';
import { decryptSecret } from '../../domain/secrets';
import { USER_ROLE } from '../../engine/host';

export const endpointParams = projectIdParam.extend({ endpoint_id: z.string().regex(ENDPOINT_ID_RE, 'not an endpoint id') });

const cu = z.number().refine(isComputeSize, { message: `must be one of ${COMPUTE_SIZES.map((s) => s.cu).join(', ')}` });

export const endpointSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    branch_id: z.string(),
    status: z.enum(['provisioning', 'running', 'suspended', 'deleting']),
    host: z.string(),
    port: z.number(),
    pg_port: z.number().nullable(),
    user: z.string(),
    connection_string: z.string().optional(),
    pg_password: z.string().optional(),
    auto_suspend_seconds: z.number(),
    compute_cu: z.number(),
    min_cu: z.number().nullable(),
    max_cu: z.number().nullable(),
    limits_enforced: z.boolean(),
    last_active_at: z.string(),
    created_at: z.string(),
  })
  .openapi('Endpoint');

/** Connection secrets only for roles allowed to see them. */
export function endpointView(deps: ApiDeps, auth: AuthContext, ep: EndpointRow) {
  const host = deps.config.publicHost;
  const port = deps.proxyPort();
  const secrets = hasRole(auth.role, POLICY['endpoint.secrets']);
  const password = secrets ? decryptSecret(ep.pg_password_enc, deps.secretKey) : undefined;
  return {
    id: ep.id,
    project_id: ep.project_id,
    branch_id: ep.branch_id,
    status: ep.status,
    host,
    port,
    pg_port: ep.port,
    user: USER_ROLE,
    ...(password ? { connection_string: proxyConnectionString({ user: USER_ROLE, password, host, port, endpointId: ep.id }), pg_password: password } : {}),
    auto_suspend_seconds: ep.auto_suspend_seconds,
    compute_cu: ep.compute_cu,
    min_cu: ep.min_cu,
    max_cu: ep.max_cu,
    limits_enforced: ep.limits_enforced,
    last_active_at: new Date(ep.last_active_at).toISOString(),
    created_at: new Date(ep.created_at).toISOString(),
  };
}

export async function findEndpoint(deps: ApiDeps, auth: AuthContext, projectId: string, endpointId: string): Promise<EndpointRow> {
  await findProject(deps, auth, projectId);
  const ep = await deps.db.selectFrom('endpoints').selectAll().where('id', '=', endpointId).where('project_id', '=', projectId).executeTakeFirst();
  if (!ep) throw notFound('endpoint', endpointId);
  return ep;
}

export function registerEndpointRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  // Before /endpoints/{endpoint_id}, which would otherwise capture it.
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/compute-sizes',
    summary: 'Compute sizes (1 CU = 1 vCPU, 2 GB)',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: projectIdParam,
    responses: { 200: { description: 'Tiers', schema: z.array(z.object({ cu: z.number(), label: z.string(), vcpu: z.number(), memory_gb: z.number() })) } },
    handler: async (ctx, { params, auth }) => {
      await findProject(deps, auth, params.project_id);
      ctx.body = COMPUTE_SIZES;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints',
    summary: 'List endpoints with connection strings (and passwords for developers and above)',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: projectIdParam,
    responses: { 200: { description: 'Endpoints', schema: z.array(endpointSchema) } },
    handler: async (ctx, { params, auth }) => {
      await findProject(deps, auth, params.project_id);
      const rows = await deps.db.selectFrom('endpoints').selectAll().where('project_id', '=', params.project_id).orderBy('created_at').execute();
      ctx.body = rows.map((r) => endpointView(deps, auth, r));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}',
    summary: 'Get an endpoint',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: endpointParams,
    responses: { 200: { description: 'The endpoint', schema: endpointSchema } },
    handler: async (ctx, { params, auth }) => {
      ctx.body = endpointView(deps, auth, await findEndpoint(deps, auth, params.project_id, params.endpoint_id));
    },
  });

  for (const verb of ['suspend', 'resume'] as const) {
    defineRoute(router, registry, deps, {
      method: 'post',
      path: `/v1/projects/{project_id}/endpoints/{endpoint_id}/${verb}`,
      summary: verb === 'suspend' ? 'Suspend (scale to zero)' : 'Resume a suspended compute',
      tags: ['Endpoints'],
      action: 'endpoint.suspend',
      params: endpointParams,
      responses: {
        200: { description: 'New state', schema: z.object({ id: z.string(), status: z.string() }) },
        202: { description: 'Still running; poll the operation' },
        409: { description: 'Another operation holds the endpoint' },
      },
      handler: async (ctx, { params, auth }) => {
        const ep = await findEndpoint(deps, auth, params.project_id, params.endpoint_id);
        const target = verb === 'suspend' ? 'suspended' : 'running';
        if (ep.status === target) {
          ctx.body = { id: ep.id, status: ep.status };
          return;
        }
        if ((verb === 'suspend' && ep.status !== 'running') || (verb === 'resume' && ep.status !== 'suspended')) {
          throw conflict(`endpoint ${ep.id} is ${ep.status}`);
        }
        const outcome = await runOperation(deps, {
          auth,
          projectId: ep.project_id,
          branchId: ep.branch_id,
          kind: `endpoint.${verb}`,
          workflowType: verb === 'suspend' ? 'suspendEndpoint' : 'resumeEndpoint',
          workflowId: `endpoint-state/${ep.id}`,
          args: (operationId) => [{ operationId, endpointId: ep.id, branchId: ep.branch_id, hostId: ep.host_id }],
          queueBehind: ['resumeEndpoint'],
        });
        if (!outcome.done) {
          answerAccepted(ctx, ep.project_id, outcome.operationId, { id: ep.id, status: ep.status });
          return;
        }
        ctx.body = { id: ep.id, status: target, operation_id: outcome.operationId };
      },
    });
  }

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}',
    summary: 'Update settings: auto_suspend_seconds, compute_cu, autoscaling bounds min_cu/max_cu',
    tags: ['Endpoints'],
    action: 'endpoint.update',
    params: endpointParams,
    body: z
      .object({
        auto_suspend_seconds: z.number().int().min(0).max(7 * 86_400).optional(),
        compute_cu: cu.optional(),
        min_cu: cu.nullable().optional(),
        max_cu: cu.nullable().optional(),
      })
      .strict()
      .refine((b) => Object.keys(b).length > 0, { message: 'nothing to update' }),
    responses: { 200: { description: 'The endpoint', schema: endpointSchema } },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await findEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const minCu = body.min_cu === undefined ? ep.min_cu : body.min_cu;
      const maxCu = body.max_cu === undefined ? ep.max_cu : body.max_cu;
      if ((minCu === null) !== (maxCu === null)) {
        throw new ApiError(422, 'validation_failed', 'min_cu and max_cu are set together (or both null to turn autoscaling off)', {
          fields: [{ field: 'body.min_cu', message: 'set together with max_cu' }],
        });
      }
      const rangeError = minCu !== null && maxCu !== null ? validateCuRange(minCu, maxCu) : undefined;
      if (rangeError) throw new ApiError(422, 'validation_failed', rangeError, { fields: [{ field: 'body.min_cu', message: rangeError }] });
      let computeCu = body.compute_cu ?? ep.compute_cu;
      if (minCu !== null && maxCu !== null) computeCu = Math.min(Math.max(computeCu, minCu), maxCu);
      let pendingResize: string | undefined;
      if (computeCu !== ep.compute_cu) {
        const outcome = await runOperation(deps, {
          auth,
          projectId: ep.project_id,
          branchId: ep.branch_id,
          kind: 'endpoint.resize',
          workflowType: 'resizeEndpoint',
          workflowId: `endpoint-state/${ep.id}`,
          args: (operationId) => [{ operationId, endpointId: ep.id, hostId: ep.host_id, computeCu, fromCu: ep.compute_cu, reason: 'api' }],
        });
        if (!outcome.done) pendingResize = outcome.operationId;
      }
      // After the resize: a refused resize (409) leaves every setting as it was.
      await deps.db
        .updateTable('endpoints')
        .set({
          auto_suspend_seconds: body.auto_suspend_seconds ?? ep.auto_suspend_seconds,
          min_cu: minCu,
          max_cu: maxCu,
          updated_at: sql`now()`,
        })
        .where('id', '=', ep.id)
        .execute();
      const view = endpointView(deps, auth, await findEndpoint(deps, auth, params.project_id, params.endpoint_id));
      if (pendingResize) answerAccepted(ctx, ep.project_id, pendingResize, view);
      else ctx.body = view;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}/allowlist',
    summary: 'IP allowlist (empty allows every address)',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: endpointParams,
    responses: { 200: { description: 'IPs and CIDRs', schema: z.array(z.string()) } },
    handler: async (ctx, { params, auth }) => {
      ctx.body = (await findEndpoint(deps, auth, params.project_id, params.endpoint_id)).allowlist;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'put',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}/allowlist',
    summary: 'Replace the IP allowlist; enforced by the proxy before any byte reaches the compute',
    tags: ['Endpoints'],
    action: 'endpoint.allowlist.write',
    params: endpointParams,
    body: z.object({ allowlist: z.array(z.string()) }).strict(),
    responses: { 200: { description: 'The normalized allowlist', schema: z.array(z.string()) } },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await findEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const parsed = parseAllowlist(body.allowlist);
      if (!parsed.ok) {
        const fields = parsed.errors.map((e) => ({ field: `body.allowlist.${e.index}`, message: `${JSON.stringify(e.entry)}: ${e.message}` }));
        throw new ApiError(422, 'validation_failed', `${fields[0].field}: ${fields[0].message}`, { fields });
      }
      await deps.db
        .updateTable('endpoints')
        .set({ allowlist: JSON.stringify(parsed.entries), updated_at: sql`now()` })
        .where('id', '=', ep.id)
        .execute();
      ctx.body = parsed.entries;
    },
  });
}
