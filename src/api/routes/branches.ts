import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, conflict, notFound } from '../errors';
import { answerAccepted, runOperation } from '../operations';
import { pagination } from '../pagination';
import { findProject, projectIdParam } from './projects';
import { endpointView } from './endpoints';
import type { AuthContext } from '../auth';
import { idPattern, newId } from '../../domain/ids';
import { isUniqueViolation } from '../../db';
import type { BranchResult } from '../../workflows/branches';

const branchParams = projectIdParam.extend({ branch_id: z.string().regex(idPattern('branch'), 'not a branch id') });

const branchName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'letters, digits, ".", "_", "/" and "-" only, starting with a letter or digit');

const branchSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    is_primary: z.boolean(),
    parent_id: z.string().nullable(),
    parent_lsn: z.string().nullable(),
    status: z.enum(['provisioning', 'ready', 'resetting', 'deleting']),
    protected: z.boolean(),
    ttl_hours: z.number().nullable(),
    expires_at: z.string().nullable(),
    storage_driver: z.string(),
    compute_id: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi('Branch');

const seedOutcome = z.object({ id: z.string(), name: z.string(), status: z.string(), duration_ms: z.number(), error: z.string().optional() });

const branchWithCompute = branchSchema
  .extend({
    pg_port: z.number().nullable(),
    host: z.string(),
    port: z.number(),
    connection_string: z.string().optional(),
    pg_password: z.string().optional(),
    seeds: z.array(seedOutcome),
    operation_id: z.string(),
  })
  .openapi('BranchWithCompute');

/** Branches of a project with their compute's id. */
function branchQuery(deps: ApiDeps, projectId: string) {
  return deps.db
    .selectFrom('branches')
    .leftJoin('endpoints', 'endpoints.branch_id', 'branches.id')
    .selectAll('branches')
    .select(['endpoints.id as compute_id'])
    .where('branches.project_id', '=', projectId);
}

function branchRow(deps: ApiDeps, projectId: string, branchId: string) {
  return branchQuery(deps, projectId).where('branches.id', '=', branchId).executeTakeFirst();
}

type BranchView = NonNullable<Awaited<ReturnType<typeof branchRow>>>;

async function findBranch(deps: ApiDeps, auth: AuthContext, projectId: string, branchId: string): Promise<BranchView> {
  await findProject(deps, auth, projectId);
  const b = await branchRow(deps, projectId, branchId);
  if (!b) throw notFound('branch', branchId);
  return b;
}

function view(b: BranchView) {
  return {
    id: b.id,
    name: b.name,
    is_primary: b.is_primary,
    parent_id: b.parent_id,
    parent_lsn: b.parent_lsn,
    status: b.status,
    protected: b.protected,
    ttl_hours: b.ttl_hours,
    expires_at: b.expires_at ? new Date(b.expires_at).toISOString() : null,
    storage_driver: b.driver,
    compute_id: b.compute_id ?? null,
    created_at: new Date(b.created_at).toISOString(),
  };
}

/** Branch, its compute and what the operation did: the answer to create and reset. */
async function withCompute(deps: ApiDeps, auth: AuthContext, projectId: string, branchId: string, result: BranchResult, operationId: string) {
  const b = await findBranch(deps, auth, projectId, branchId);
  const ep = await deps.db.selectFrom('endpoints').selectAll().where('id', '=', result.endpointId).executeTakeFirstOrThrow();
  const e = endpointView(deps, auth, ep);
  return {
    ...view(b),
    pg_port: e.pg_port,
    host: e.host,
    port: e.port,
    ...(e.connection_string ? { connection_string: e.connection_string, pg_password: e.pg_password } : {}),
    seeds: result.seeds,
    operation_id: operationId,
  };
}

const accepted = z.object({ operation_id: z.string(), status: z.literal('running'), branch_id: z.string() });

export function registerBranchRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches',
    summary: 'List branches',
    tags: ['Branches'],
    action: 'branch.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Branches, oldest first', schema: z.array(branchSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await findProject(deps, auth, params.project_id);
      const rows = await branchQuery(deps, params.project_id)
        .orderBy('branches.created_at')
        .orderBy('branches.id')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      ctx.body = rows.map(view);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Get a branch',
    tags: ['Branches'],
    action: 'branch.read',
    params: branchParams,
    responses: { 200: { description: 'The branch', schema: branchSchema } },
    handler: async (ctx, { params, auth }) => {
      ctx.body = view(await findBranch(deps, auth, params.project_id, params.branch_id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/branches',
    summary: 'Create a branch: a copy-on-write fork of its parent with its own compute; seeds run on it',
    tags: ['Branches'],
    action: 'branch.create',
    params: projectIdParam,
    body: z.object({ name: branchName, parent_id: z.string().regex(idPattern('branch'), 'not a branch id').optional() }).strict(),
    responses: {
      201: { description: 'Created', schema: branchWithCompute },
      202: { description: 'Still provisioning; poll the operation', schema: accepted },
      409: { description: 'Name taken, or the parent is busy' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const project = await findProject(deps, auth, params.project_id);
      if (project.status !== 'ready') throw conflict(`project ${project.id} is ${project.status}`);
      const parentId = body.parent_id ?? project.branch_id;
      const parent = parentId ? await branchRow(deps, project.id, parentId) : undefined;
      if (!parent) {
        throw new ApiError(422, 'validation_failed', `parent branch ${parentId} not found in this project`, {
          fields: [{ field: 'body.parent_id', message: 'not a branch of this project' }],
        });
      }
      if (parent.status !== 'ready') throw conflict(`parent branch ${parent.id} is ${parent.status}`);
      const taken = await deps.db.selectFrom('branches').select('id').where('project_id', '=', project.id).where('name', '=', body.name).executeTakeFirst();
      if (taken) throw conflict(`a branch named "${body.name}" already exists (${taken.id})`);
      const branchId = newId('branch');
      const endpointId = newId('endpoint');
      const outcome = await runOperation<BranchResult>(deps, {
        auth,
        projectId: project.id,
        branchId,
        kind: 'branch.create',
        workflowType: 'createBranch',
        workflowId: `branch/${branchId}`,
        args: (operationId) => [
          { operationId, projectId: project.id, branchId, endpointId, parentBranchId: parent.id, name: body.name, hostId: parent.host_id },
        ],
      });
      if (!outcome.done) {
        answerAccepted(ctx, project.id, outcome.operationId, { status: 'running', branch_id: branchId });
        return;
      }
      ctx.status = 201;
      ctx.body = await withCompute(deps, auth, project.id, branchId, outcome.result, outcome.operationId);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Rename, set a TTL (auto-delete) or protect a branch',
    tags: ['Branches'],
    action: 'branch.update',
    params: branchParams,
    body: z
      .object({
        name: branchName.optional(),
        ttl_hours: z.number().int().min(1).max(24 * 365).nullable().optional(),
        protected: z.boolean().optional(),
      })
      .strict()
      .refine((b) => Object.keys(b).length > 0, { message: 'nothing to update' }),
    responses: { 200: { description: 'The branch', schema: branchSchema } },
    handler: async (ctx, { params, body, auth }) => {
      const b = await findBranch(deps, auth, params.project_id, params.branch_id);
      if (b.is_primary && body.ttl_hours) {
        throw new ApiError(422, 'validation_failed', 'the primary branch cannot expire', { fields: [{ field: 'body.ttl_hours', message: 'not allowed on the primary branch' }] });
      }
      try {
        await deps.db
          .updateTable('branches')
          .set({
            ...(body.name !== undefined ? { name: body.name } : {}),
            ...(body.protected !== undefined ? { protected: body.protected } : {}),
            ...(body.ttl_hours !== undefined
              ? { ttl_hours: body.ttl_hours, expires_at: body.ttl_hours === null ? null : sql<Date>`now() + make_interval(hours => ${body.ttl_hours})` }
              : {}),
          })
          .where('id', '=', b.id)
          .execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict(`a branch named "${body.name}" already exists`);
        throw err;
      }
      ctx.body = view(await findBranch(deps, auth, params.project_id, params.branch_id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/branches/{branch_id}/reset',
    summary: "Reset a branch to its parent's current state; the endpoint and connection string stay the same",
    tags: ['Branches'],
    action: 'branch.reset',
    params: branchParams,
    responses: {
      200: { description: 'Reset done', schema: branchWithCompute },
      202: { description: 'Still resetting; poll the operation', schema: accepted },
      409: { description: 'Primary branch, or another operation holds the branch' },
    },
    handler: async (ctx, { params, auth }) => {
      const b = await findBranch(deps, auth, params.project_id, params.branch_id);
      if (!b.parent_id) throw conflict(`branch ${b.id} is the primary branch and has no parent to reset to`);
      if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      const parent = await branchRow(deps, b.project_id, b.parent_id);
      if (!parent || parent.status !== 'ready') throw conflict(`parent branch ${b.parent_id} is not ready`);
      const outcome = await runOperation<BranchResult>(deps, {
        auth,
        projectId: b.project_id,
        branchId: b.id,
        kind: 'branch.reset',
        workflowType: 'resetBranch',
        workflowId: `branch/${b.id}`,
        args: (operationId) => [{ operationId, projectId: b.project_id, branchId: b.id, endpointId: b.compute_id, parentBranchId: parent.id, hostId: b.host_id }],
      });
      if (!outcome.done) {
        answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running', branch_id: b.id });
        return;
      }
      ctx.body = { ...(await withCompute(deps, auth, b.project_id, b.id, outcome.result, outcome.operationId)), status: 'running' };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Delete a branch and its compute. Refused for the primary branch, a protected branch, or one with children.',
    tags: ['Branches'],
    action: 'branch.delete',
    params: branchParams,
    responses: {
      204: { description: 'Deleted' },
      202: { description: 'Still deleting; poll the operation', schema: accepted },
      409: { description: 'Primary, protected, has children, or busy' },
    },
    handler: async (ctx, { params, auth }) => {
      const b = await findBranch(deps, auth, params.project_id, params.branch_id);
      if (b.is_primary) throw conflict(`branch ${b.id} is the primary branch; delete the project instead`);
      if (b.protected) throw conflict(`branch ${b.id} is protected; unprotect it first (PATCH {"protected": false})`);
      const children = await deps.db.selectFrom('branches').select(['id', 'name']).where('parent_id', '=', b.id).execute();
      if (children.length) {
        throw conflict(`branch ${b.id} has child branches: ${children.map((c) => `${c.name} (${c.id})`).join(', ')}; delete them first`, {
          children: children.map((c) => c.id),
        });
      }
      if (b.status === 'provisioning' || b.status === 'resetting') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      const outcome = await runOperation<void>(deps, {
        auth,
        projectId: b.project_id,
        branchId: b.id,
        kind: 'branch.delete',
        workflowType: 'deleteBranch',
        workflowId: `branch/${b.id}`,
        args: (operationId) => [{ operationId, branchId: b.id, endpointId: b.compute_id, hostId: b.host_id }],
      });
      if (!outcome.done) {
        answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running', branch_id: b.id });
        return;
      }
      ctx.status = 204;
    },
  });
}
