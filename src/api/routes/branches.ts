import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import type { AuthContext } from '../auth';
import { ApiError, conflict } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { answerPage, nonEmptyPatch, pagination } from '../pagination';
import { branchParams, projectIdParam } from '../params';
import { publicAccess, requireBranch, requireProject } from '../lookup';
import { branchAcceptedSchema, branchSchema, branchView, branchWithComputeSchema, branchWithComputeView } from '../views/branches';
import { branchNamed, childBranches, countBranches, findBranch, listBranches, updateBranch } from '../../db/queries/branches';
import { endpointById } from '../../db/queries/endpoints';
import { isUniqueViolation } from '../../db';
import { idPattern, newId } from '../../domain/ids';
import { branchName as branchNameSchema } from '../../domain/names';
import { branchCreate, branchDelete, branchReset } from '../../operations';
import type { BranchResult } from '../../workflows/branches';

const branchName = branchNameSchema();

export function registerBranchRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  /** The answer to create and reset: the branch, its compute, and what the operation did. */
  async function withCompute(auth: AuthContext, projectId: string, result: BranchResult, operationId: string) {
    const b = await requireBranch(deps, auth, projectId, result.branchId);
    const ep = (await endpointById(deps.db, result.endpointId))!;
    return branchWithComputeView(b, ep, publicAccess(deps, auth, ep), result, operationId);
  }

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
      await requireProject(deps, auth, params.project_id);
      const rows = await listBranches(deps.db, auth.orgId, params.project_id, query);
      answerPage(ctx, await countBranches(deps.db, params.project_id), rows.map(branchView));
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
      ctx.body = branchView(await requireBranch(deps, auth, params.project_id, params.branch_id));
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
      201: { description: 'Created', schema: branchWithComputeSchema },
      202: { description: 'Still provisioning; poll the operation', schema: branchAcceptedSchema },
      409: { description: 'Name taken, or the parent is busy' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const project = await requireProject(deps, auth, params.project_id);
      if (project.status !== 'ready') throw conflict(`project ${project.id} is ${project.status}`);
      const parentId = body.parent_id ?? project.branch_id;
      const parent = parentId ? await findBranch(deps.db, auth.orgId, project.id, parentId) : undefined;
      if (!parent) {
        throw new ApiError(422, 'validation_failed', `parent branch ${parentId} not found in this project`, {
          fields: [{ field: 'body.parent_id', message: 'not a branch of this project' }],
        });
      }
      if (parent.status !== 'ready') throw conflict(`parent branch ${parent.id} is ${parent.status}`);
      const taken = await branchNamed(deps.db, project.id, body.name);
      if (taken) throw conflict(`a branch named "${body.name}" already exists (${taken.id})`);
      const branchId = newId('branch');
      const outcome = await runOperation(deps, auth, branchCreate, {
        projectId: project.id,
        branchId,
        endpointId: newId('endpoint'),
        parentBranchId: parent.id,
        name: body.name,
        hostId: parent.host_id,
      });
      if (!outcome.done) return answerAccepted(ctx, project.id, outcome.operationId, { status: 'running', branch_id: branchId });
      ctx.status = 201;
      ctx.body = await withCompute(auth, project.id, outcome.result, outcome.operationId);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Rename, set a TTL (auto-delete) or protect a branch',
    tags: ['Branches'],
    action: 'branch.update',
    params: branchParams,
    body: nonEmptyPatch(
      z.object({
        name: branchName.optional(),
        ttl_hours: z.number().int().min(1).max(24 * 365).nullable().optional(),
        protected: z.boolean().optional(),
      }),
    ),
    responses: { 200: { description: 'The branch', schema: branchSchema }, 409: { description: 'Name taken' } },
    handler: async (ctx, { params, body, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (b.is_primary && body.ttl_hours) {
        throw new ApiError(422, 'validation_failed', 'the primary branch cannot expire', { fields: [{ field: 'body.ttl_hours', message: 'not allowed on the primary branch' }] });
      }
      try {
        await updateBranch(deps.db, b.id, { name: body.name, protected: body.protected, ttlHours: body.ttl_hours });
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict(`a branch named "${body.name}" already exists`);
        throw err;
      }
      ctx.body = branchView(await requireBranch(deps, auth, params.project_id, params.branch_id));
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
      200: { description: 'Reset done', schema: branchWithComputeSchema },
      202: { description: 'Still resetting; poll the operation', schema: branchAcceptedSchema },
      409: { description: 'Primary branch, or another operation holds the branch' },
    },
    handler: async (ctx, { params, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (!b.parent_id) throw conflict(b.is_primary ? `branch ${b.id} is the primary branch and has no parent to reset to` : `branch ${b.id} was imported and has no parent to reset to`);
      if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      const parent = await findBranch(deps.db, auth.orgId, b.project_id, b.parent_id);
      if (!parent || parent.status !== 'ready') throw conflict(`parent branch ${b.parent_id} is not ready`);
      const outcome = await runOperation(deps, auth, branchReset, {
        projectId: b.project_id,
        branchId: b.id,
        endpointId: b.compute_id,
        parentBranchId: parent.id,
        hostId: b.host_id,
      });
      if (!outcome.done) return answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running', branch_id: b.id });
      ctx.body = await withCompute(auth, b.project_id, outcome.result, outcome.operationId);
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
      202: { description: 'Still deleting; poll the operation', schema: branchAcceptedSchema },
      409: { description: 'Primary, protected, has children, or busy' },
    },
    handler: async (ctx, { params, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (b.is_primary) throw conflict(`branch ${b.id} is the primary branch; delete the project instead`);
      if (b.protected) throw conflict(`branch ${b.id} is protected; unprotect it first (PATCH {"protected": false})`);
      const children = await childBranches(deps.db, b.id);
      if (children.length) {
        throw conflict(`branch ${b.id} has child branches: ${children.map((c) => `${c.name} (${c.id})`).join(', ')}; delete them first`, {
          children: children.map((c) => c.id),
        });
      }
      if (b.status === 'provisioning' || b.status === 'resetting') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      const outcome = await runOperation(deps, auth, branchDelete, { projectId: b.project_id, branchId: b.id, endpointId: b.compute_id, hostId: b.host_id });
      if (!outcome.done) return answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running', branch_id: b.id });
      ctx.status = 204;
    },
  });
}
