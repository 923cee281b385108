import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import type { AuthContext } from '../auth';
import { conflict, notFound } from '../errors';
import { answerAccepted, liveActivity, liveProgress, runOperation, runRead } from '../operationRunner';
import { importParams, projectIdParam } from '../params';
import { requireProject } from '../lookup';
import { importAcceptedSchema, importStatusSchema, importStatusView, importValidationSchema, importValidationView } from '../views/imports';
import { branchNamed, findBranch } from '../../db/queries/branches';
import { latestOperationOn } from '../../db/queries/operations';
import { newId, randomToken } from '../../domain/ids';
import { branchName } from '../../domain/names';
import { encryptSecret } from '../../domain/secrets';
import { parseSourceDsn, redactDsn, SourceDsnError } from '../../domain/sourceDsn';
import { importStart, importValidate, workflowIds } from '../../operations';

/**
 * A source DSN: a postgresql:// URL with one TCP host. Refused with 422 when it is not one; the
 * message never repeats the DSN (it carries a password).
 */
const sourceDsn = z
  .string()
  .max(4096, 'must be at most 4096 characters')
  .superRefine((s, ctx) => {
    try {
      parseSourceDsn(s);
    } catch (err) {
      if (!(err instanceof SourceDsnError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message });
    }
  })
  .openapi({ description: 'postgresql://user:password@host:port/database[?sslmode=…]; the password is sealed at once and never stored or shown', example: 'postgresql://user:pass@host:5432/mydb' });

export function registerImportRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  /** The project and the host of its primary branch: where the import's branch will live. */
  async function projectAndHost(auth: AuthContext, projectId: string) {
    const project = await requireProject(deps, auth, projectId);
    const primary = project.branch_id ? await findBranch(deps.db, auth.orgId, project.id, project.branch_id) : undefined;
    if (!primary) throw conflict(`project ${project.id} is ${project.status} and has no primary branch yet`);
    return { project, hostId: primary.host_id };
  }

  async function requireImport(auth: AuthContext, projectId: string, branchId: string) {
    await requireProject(deps, auth, projectId);
    const op = await latestOperationOn(deps.db, auth.orgId, projectId, importStart.kind, workflowIds.branch(branchId));
    if (!op) throw notFound('import', branchId);
    return op;
  }

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/import/validate',
    summary: "Check a database to import: connection (from the host that would import it), version, size, tables, extensions against the project's major",
    tags: ['Import'],
    action: 'import.validate',
    params: projectIdParam,
    body: z.object({ source_dsn: sourceDsn }).strict(),
    responses: { 200: { description: 'The check; a source that cannot be imported answers ok: false with errors', schema: importValidationSchema }, 504: { description: 'No answer in time' } },
    handler: async (ctx, { params, body, auth }) => {
      const { project, hostId } = await projectAndHost(auth, params.project_id);
      const inspection = await runRead(deps, importValidate, {
        projectId: project.id,
        checkId: randomToken(12),
        hostId,
        pgVersion: project.pg_version,
        sourceSealed: encryptSecret(body.source_dsn, deps.secretKey),
      });
      ctx.body = importValidationView(inspection);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/import/start',
    summary: 'Import a database into a new branch: pg_dump | psql from the source, streamed; poll GET …/import/{branch_id} for progress',
    tags: ['Import'],
    action: 'import.start',
    params: projectIdParam,
    body: z.object({ source_dsn: sourceDsn, branch_name: branchName().default('imported') }).strict(),
    responses: {
      202: { description: 'Importing', schema: importAcceptedSchema },
      409: { description: 'Project not ready, or the branch name is taken' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const { project, hostId } = await projectAndHost(auth, params.project_id);
      if (project.status !== 'ready') throw conflict(`project ${project.id} is ${project.status}`);
      const taken = await branchNamed(deps.db, project.id, body.branch_name);
      if (taken) throw conflict(`a branch named "${body.branch_name}" already exists (${taken.id})`);
      const branchId = newId('branch');
      const endpointId = newId('endpoint');
      const outcome = await runOperation(
        deps,
        auth,
        importStart,
        {
          projectId: project.id,
          branchId,
          endpointId,
          name: body.branch_name,
          hostId,
          pgVersion: project.pg_version,
          sourceSealed: encryptSecret(body.source_dsn, deps.secretKey),
          sourceRedacted: redactDsn(parseSourceDsn(body.source_dsn)),
        },
        { wait: false },
      );
      answerAccepted(ctx, project.id, outcome.operationId, { branch_id: branchId, branch_name: body.branch_name, compute_id: endpointId, status: 'importing' });
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/import/{branch_id}',
    summary: 'An import: status (importing, ready, failed, cancelled), step, progress (bytes, object being loaded), error',
    tags: ['Import'],
    action: 'import.read',
    params: importParams,
    responses: { 200: { description: 'The import', schema: importStatusSchema } },
    handler: async (ctx, { params, auth }) => {
      const op = await requireImport(auth, params.project_id, params.branch_id);
      const [step, activity] = await Promise.all([liveProgress(deps, op), liveActivity(deps, op)]);
      ctx.body = importStatusView(op, { step, activity });
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/import/{branch_id}/cancel',
    summary: 'Cancel a running import: its programs are stopped and its branch removed',
    tags: ['Import'],
    action: 'import.cancel',
    params: importParams,
    responses: { 202: { description: 'Cancelling; the import ends as cancelled', schema: importStatusSchema }, 409: { description: 'The import is not running' } },
    handler: async (ctx, { params, auth }) => {
      const op = await requireImport(auth, params.project_id, params.branch_id);
      if (op.status !== 'running' || !op.run_id) throw conflict(`the import of branch ${params.branch_id} is not running (${op.status})`);
      try {
        await deps.temporal.workflow.getHandle(op.workflow_id, op.run_id).cancel();
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') throw conflict(`the import of branch ${params.branch_id} has ended`);
        throw err;
      }
      ctx.status = 202;
      ctx.set('Location', `/v1/projects/${params.project_id}/import/${params.branch_id}`);
      ctx.body = importStatusView(op, {});
    },
  });
}

