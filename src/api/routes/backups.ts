import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, conflict, notFound } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { answerPage, pagination } from '../pagination';
import { backupParams, projectIdParam } from '../params';
import { publicAccess, requireProject } from '../lookup';
import { retentionWindowStart } from '../pointInTime';
import { backupSchema, backupView, restoredSchema } from '../views/backups';
import { connectionFields } from '../views/endpoints';
import { countBackups, deleteBackup, findBackup, listBackups } from '../../db/queries/backups';
import { branchNamed, findBranch } from '../../db/queries/branches';
import { endpointById } from '../../db/queries/endpoints';
import { idPattern, newId } from '../../domain/ids';
import { resourceName } from '../../domain/names';
import { backupCreate, branchRestore } from '../../operations';

const backupName = resourceName(/^[\p{L}\p{N}][\p{L}\p{N} _.:-]*$/u, 'letters, digits, spaces, "_", ".", ":" and "-" only, starting with a letter or digit');
const restoredName = resourceName(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'letters, digits, ".", "_", "/" and "-" only, starting with a letter or digit');

export function registerBackupRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  async function requireBackup(auth: Parameters<typeof findBackup>[1], projectId: string, backupId: string) {
    const b = await findBackup(deps.db, auth, projectId, backupId);
    if (!b) throw notFound("backup", backupId);
    return b;
  }

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/backups',
    summary: 'List backups: named restore points and scheduled base backups, newest first',
    tags: ['Backups'],
    action: 'backup.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Backups', schema: z.array(backupSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const rows = await listBackups(deps.db, auth.orgId, params.project_id, query);
      answerPage(ctx, await countBackups(deps.db, params.project_id), rows.map(backupView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/backups/{backup_id}',
    summary: 'Get a backup',
    tags: ['Backups'],
    action: 'backup.read',
    params: backupParams,
    responses: { 200: { description: 'The backup', schema: backupSchema } },
    handler: async (ctx, { params, auth }) => {
      await requireProject(deps, auth, params.project_id);
      ctx.body = backupView(await requireBackup(auth.orgId, params.project_id, params.backup_id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/backups',
    summary: "Record a named restore point at the branch's current LSN",
    tags: ['Backups'],
    action: 'backup.create',
    params: projectIdParam,
    body: z.object({ name: backupName, branch_id: z.string().regex(idPattern('branch'), 'not a branch id').optional() }).strict(),
    responses: {
      201: { description: 'Recorded', schema: backupSchema },
      202: { description: 'Still recording; poll the operation' },
      409: { description: 'The branch is busy, or its history cannot be read to now' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const project = await requireProject(deps, auth, params.project_id);
      if (project.status !== 'ready') throw conflict(`project ${project.id} is ${project.status}`);
      const branchId = body.branch_id ?? project.branch_id!;
      const branch = await findBranch(deps.db, auth.orgId, project.id, branchId);
      if (!branch) throw new ApiError(422, 'validation_failed', `branch ${branchId} not found in this project`, { fields: [{ field: 'body.branch_id', message: 'not a branch of this project' }] });
      if (branch.status !== 'ready') throw conflict(`branch ${branch.id} is ${branch.status}`);
      const backupId = newId('backup');
      const outcome = await runOperation(deps, auth, backupCreate, {
        projectId: project.id,
        branchId: branch.id,
        backupId,
        baseId: newId('base'),
        name: body.name,
        hostId: branch.host_id,
      });
      if (!outcome.done) return answerAccepted(ctx, project.id, outcome.operationId, { status: 'running', backup_id: backupId });
      ctx.status = 201;
      ctx.body = backupView(await requireBackup(auth.orgId, project.id, backupId));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}/backups/{backup_id}',
    summary: 'Delete a backup (its restore point; the WAL it needed is pruned past the retention window)',
    tags: ['Backups'],
    action: 'backup.delete',
    params: backupParams,
    responses: { 204: { description: 'Deleted' } },
    handler: async (ctx, { params, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const b = await requireBackup(auth.orgId, params.project_id, params.backup_id);
      await deleteBackup(deps.db, b.id);
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/backups/{backup_id}/restore',
    summary: "Restore to a new branch (and compute) holding the backup's branch exactly as of its LSN",
    tags: ['Backups'],
    action: 'branch.restore',
    params: backupParams,
    body: z.object({ name: restoredName.optional() }).strict().optional(),
    responses: {
      201: { description: 'Restored', schema: restoredSchema },
      202: { description: 'Still restoring; poll the operation' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const project = await requireProject(deps, auth, params.project_id);
      const backup = await requireBackup(auth.orgId, project.id, params.backup_id);
      const source = await findBranch(deps.db, auth.orgId, project.id, backup.branch_id);
      if (!source || source.status !== 'ready') throw conflict(`branch ${backup.branch_id} is ${source?.status ?? 'gone'}`);
      const name = body?.name ?? `restored-${backup.id}`;
      const taken = await branchNamed(deps.db, project.id, name);
      if (taken) throw conflict(`a branch named "${name}" already exists (${taken.id})`);
      const branchId = newId('branch');
      const endpointId = newId('endpoint');
      const outcome = await runOperation(deps, auth, branchRestore, {
        projectId: project.id,
        branchId,
        endpointId,
        parentBranchId: source.id,
        name,
        hostId: source.host_id,
        target: { lsn: backup.lsn, historyId: backup.history_id },
        windowStart: retentionWindowStart(deps),
      });
      if (!outcome.done) return answerAccepted(ctx, project.id, outcome.operationId, { status: 'running', branch_id: branchId });
      const ep = (await endpointById(deps.db, endpointId))!;
      const access = publicAccess(deps, auth, ep);
      ctx.status = 201;
      ctx.body = {
        branch_id: branchId,
        compute_id: endpointId,
        lsn: outcome.result.lsn,
        last_commit_at: outcome.result.lastCommitAt,
        ...(connectionFields(endpointId, access).connection_string ? { connection_string: connectionFields(endpointId, access).connection_string } : {}),
        operation_id: outcome.operationId,
      } satisfies z.infer<typeof restoredSchema>;
    },
  });
}
