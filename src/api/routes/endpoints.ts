import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, conflict } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { answerPage, nonEmptyPatch, pagination, answerSlice } from '../pagination';
import { endpointParams, projectIdParam } from '../params';
import { publicAccess, requireEndpoint, requireProject } from '../lookup';
import { endpointSchema, endpointStateSchema, endpointView } from '../views/endpoints';
import { countEndpoints, listEndpoints, setAllowlist, updateEndpointSettings } from '../../db/queries/endpoints';
import { COMPUTE_SIZES, isComputeSize, validateCuRange } from '../../domain/sizing';
import { parseAllowlist } from '../../domain/allowlist';
import { endpointResize, endpointResume, endpointSuspend } from '../../operations';

const cu = z.number().refine(isComputeSize, { message: `must be one of ${COMPUTE_SIZES.map((s) => s.cu).join(', ')}` });

export function registerEndpointRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  // Before /endpoints/{endpoint_id}, which would otherwise capture it.
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/compute-sizes',
    summary: 'Compute sizes (1 CU = 1 vCPU, 2 GB)',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Tiers', schema: z.array(z.object({ cu: z.number(), label: z.string(), vcpu: z.number(), memory_gb: z.number() })) } },
    handler: async (ctx, { params, auth, query }) => {
      await requireProject(deps, auth, params.project_id);
      answerSlice(ctx, query, COMPUTE_SIZES);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints',
    summary: 'List endpoints with connection strings (and passwords for developers and above)',
    tags: ['Endpoints'],
    action: 'endpoint.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Endpoints', schema: z.array(endpointSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const rows = await listEndpoints(deps.db, params.project_id, query);
      answerPage(ctx, await countEndpoints(deps.db, params.project_id), rows.map((r) => endpointView(r, publicAccess(deps, auth, r))));
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
      const ep = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
      ctx.body = endpointView(ep, publicAccess(deps, auth, ep));
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
        200: { description: 'New state', schema: endpointStateSchema },
        202: { description: 'Still running; poll the operation', schema: endpointStateSchema },
        409: { description: 'Another operation holds the endpoint' },
      },
      handler: async (ctx, { params, auth }) => {
        const ep = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
        const target = verb === 'suspend' ? 'suspended' : 'running';
        if (ep.status === target) {
          ctx.body = { id: ep.id, status: ep.status };
          return;
        }
        if ((verb === 'suspend' && ep.status !== 'running') || (verb === 'resume' && ep.status !== 'suspended')) {
          throw conflict(`endpoint ${ep.id} is ${ep.status}`);
        }
        const input = { projectId: ep.project_id, endpointId: ep.id, branchId: ep.branch_id, hostId: ep.host_id };
        const outcome = await runOperation(deps, auth, verb === 'suspend' ? endpointSuspend : endpointResume, input);
        if (!outcome.done) return answerAccepted(ctx, ep.project_id, outcome.operationId, { id: ep.id, status: ep.status });
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
    body: nonEmptyPatch(
      z.object({
        auto_suspend_seconds: z.number().int().min(0).max(7 * 86_400).optional(),
        compute_cu: cu.optional(),
        min_cu: cu.nullable().optional(),
        max_cu: cu.nullable().optional(),
      }),
    ),
    responses: {
      200: { description: 'The endpoint', schema: endpointSchema },
      202: { description: 'Resize still running; poll the operation', schema: endpointSchema },
      409: { description: 'Another operation holds the endpoint' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
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
        const outcome = await runOperation(deps, auth, endpointResize, {
          projectId: ep.project_id,
          endpointId: ep.id,
          branchId: ep.branch_id,
          hostId: ep.host_id,
          computeCu,
          fromCu: ep.compute_cu,
          reason: 'api',
        });
        if (!outcome.done) pendingResize = outcome.operationId;
      }
      // After the resize: a refused resize (409) leaves every setting as it was.
      await updateEndpointSettings(deps.db, ep.id, { autoSuspendSeconds: body.auto_suspend_seconds ?? ep.auto_suspend_seconds, minCu, maxCu });
      const fresh = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const view = endpointView(fresh, publicAccess(deps, auth, fresh));
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
    query: pagination,
    responses: { 200: { description: 'IPs and CIDRs', schema: z.array(z.string()) } },
    handler: async (ctx, { params, auth, query }) => {
      answerSlice(ctx, query, (await requireEndpoint(deps, auth, params.project_id, params.endpoint_id)).allowlist);
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
      const ep = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const parsed = parseAllowlist(body.allowlist);
      if (!parsed.ok) {
        const fields = parsed.errors.map((e) => ({ field: `body.allowlist.${e.index}`, message: `${JSON.stringify(e.entry)}: ${e.message}` }));
        throw new ApiError(422, 'validation_failed', `${fields[0].field}: ${fields[0].message}`, { fields });
      }
      await setAllowlist(deps.db, ep.id, parsed.entries);
      ctx.body = parsed.entries;
    },
  });
}
