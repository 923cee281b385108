import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import type { AuthContext } from '../auth';
import { ApiError, conflict, notFound } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { answerPage, nonEmptyPatch, pagination } from '../pagination';
import { branchParams, projectIdParam } from '../params';
import { publicAccess, requireBranch, requireProject } from '../lookup';
import { branchAcceptedSchema, branchSchema, branchView, branchWithComputeSchema, branchWithComputeView } from '../views/branches';
import { branchNamed, childBranches, countBranches, findBranch, listBranches, updateBranch } from '../../db/queries/branches';
import { endpointById } from '../../db/queries/endpoints';
import { hasReplicas } from '../../db/queries/replicas';
import { isUniqueViolation } from '../../db';
import { idPattern, newId } from '../../domain/ids';
import { branchName as branchNameSchema } from '../../domain/names';
import { branchCreate, branchDelete, branchReset, branchRestore, branchRestoreInPlace } from '../../operations';
import { lsnField, retentionWindowStart, timestampField } from '../pointInTime';
import type { BranchResult } from '../../workflows/branches';

const branchName = branchNameSchema();

export function registerBranchRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  /** The answer to create and reset: the branch, its compute, and what the operation did. */
  async function withCompute(auth: AuthContext, projectId: string, result: Pick<BranchResult, 'branchId' | 'endpointId' | 'seeds'>, operationId: string) {
    const b = await requireBranch(deps, auth, projectId, result.branchId);
    const ep = (await endpointById(deps.db, result.endpointId))!;
    return branchWithComputeView(b, ep, publicAccess(deps, auth, ep), result, operationId);
  }

  /**
   * A reset or in-place restore gives the branch new data (a new history): its replicas, standbys
   * of the old data, could not follow. The rule is the simplest honest one: delete them first.
   */
  async function refuseWithReplicas(branchId: string, what: string) {
    if (await hasReplicas(deps.db, branchId)) throw conflict(`branch ${branchId} has read replicas and cannot be ${what}; delete its replicas first`);
  }

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches',
    summary: 'List branches',
    tags: ['Branches'],
    action: 'branch.browse',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Branches, oldest first (for an analyst: those with masking on)', schema: z.array(branchSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const scope = { maskedOnly: auth.role === 'analyst' };
      const rows = await listBranches(deps.db, auth.orgId, params.project_id, query, scope);
      answerPage(ctx, await countBranches(deps.db, params.project_id, scope), rows.map(branchView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Get a branch',
    tags: ['Branches'],
    action: 'branch.browse',
    params: branchParams,
    responses: { 200: { description: 'The branch', schema: branchSchema } },
    handler: async (ctx, { params, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (auth.role === 'analyst' && !b.anonymization) throw notFound('branch', b.id);
      ctx.body = branchView(b);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/branches',
    summary: 'Create a branch: a copy-on-write fork of its parent with its own compute; seeds run on it',
    tags: ['Branches'],
    action: 'branch.create',
    params: projectIdParam,
    body: z
      .object({
        name: branchName,
        parent_id: z.string().regex(idPattern('branch'), 'not a branch id').optional(),
        parent_lsn: lsnField.optional().openapi({ description: "Branch at this LSN of the parent's current history (exclusive: transactions whose commit record starts before it)" }),
        parent_timestamp: timestampField.optional().openapi({ description: 'Branch at this moment: every transaction committed at or before it (ISO 8601 with an offset)' }),
      })
      .strict()
      .refine((b) => !(b.parent_lsn && b.parent_timestamp), { message: 'give parent_lsn or parent_timestamp, not both', path: ['parent_timestamp'] }),
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
      const records = { projectId: project.id, branchId, endpointId: newId('endpoint'), parentBranchId: parent.id, name: body.name, hostId: parent.host_id };
      if (body.parent_lsn || body.parent_timestamp) {
        // A past point of the parent: its history replayed, not a fork of its present.
        const target = body.parent_lsn ? { lsn: body.parent_lsn } : { timestamp: body.parent_timestamp };
        const outcome = await runOperation(deps, auth, branchRestore, { ...records, target, windowStart: retentionWindowStart(deps) });
        if (!outcome.done) return answerAccepted(ctx, project.id, outcome.operationId, { status: 'running', branch_id: branchId });
        ctx.status = 201;
        ctx.body = { ...(await withCompute(auth, project.id, outcome.result, outcome.operationId)), parent_commit_at: outcome.result.lastCommitAt };
        return;
      }
      const outcome = await runOperation(deps, auth, branchCreate, records);
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
      409: { description: 'Primary branch, the branch has read replicas, or another operation holds the branch' },
    },
    handler: async (ctx, { params, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (!b.parent_id) throw conflict(b.is_primary ? `branch ${b.id} is the primary branch and has no parent to reset to` : `branch ${b.id} was imported and has no parent to reset to`);
      if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      await refuseWithReplicas(b.id, 'reset');
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
    method: 'post',
    path: '/v1/projects/{project_id}/branches/{branch_id}/restore',
    summary: 'Rewind a branch to a point of its own history; the endpoint and connection string stay the same',
    tags: ['Branches'],
    action: 'branch.restore',
    params: branchParams,
    body: z
      .object({
        source_lsn: lsnField.optional().openapi({ description: "An LSN of the branch's current history (exclusive)" }),
        source_timestamp: timestampField.optional().openapi({ description: 'Every transaction committed at or before this moment (ISO 8601 with an offset)' }),
        preserve_under_name: branchName.optional().openapi({ description: 'Keep the state before the restore as a new branch of this name' }),
      })
      .strict()
      .refine((b) => Boolean(b.source_lsn) !== Boolean(b.source_timestamp), { message: 'give exactly one of source_lsn and source_timestamp', path: ['source_lsn'] }),
    responses: {
      200: { description: 'Restored', schema: branchWithComputeSchema.extend({ lsn: z.string(), last_commit_at: z.string().nullable(), preserved_branch_id: z.string().nullable() }) },
      202: { description: 'Still restoring; poll the operation', schema: branchAcceptedSchema },
      409: { description: 'The branch is busy or has read replicas, or the name to preserve under is taken' },
      422: { description: 'The point is outside the history or its retention window' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      await refuseWithReplicas(b.id, 'restored in place');
      if (body.preserve_under_name) {
        const taken = await branchNamed(deps.db, b.project_id, body.preserve_under_name);
        if (taken) throw conflict(`a branch named "${body.preserve_under_name}" already exists (${taken.id})`);
      }
      const outcome = await runOperation(deps, auth, branchRestoreInPlace, {
        projectId: b.project_id,
        branchId: b.id,
        endpointId: b.compute_id,
        hostId: b.host_id,
        target: body.source_lsn ? { lsn: body.source_lsn } : { timestamp: body.source_timestamp },
        windowStart: retentionWindowStart(deps),
        ...(body.preserve_under_name
          ? { preserve: { name: body.preserve_under_name, branchId: newId('branch'), endpointId: newId('endpoint'), parentBranchId: b.parent_id } }
          : {}),
      });
      if (!outcome.done) return answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running', branch_id: b.id });
      ctx.body = {
        ...(await withCompute(auth, b.project_id, outcome.result, outcome.operationId)),
        lsn: outcome.result.lsn,
        last_commit_at: outcome.result.lastCommitAt,
        preserved_branch_id: outcome.result.preservedBranchId,
      };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}/branches/{branch_id}',
    summary: 'Delete a branch, its compute and its read replicas. Refused for the primary branch, a protected branch, or one with children.',
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
