import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { notFound, conflict } from '../errors';
import { answerAccepted, runOperation } from '../operations';
import { pagination } from '../pagination';
import { idPattern, newId } from '../../domain/ids';
import { proxyConnectionString } from '../../domain/connectionString';
import { decryptSecret } from '../../domain/secrets';
import { USER_ROLE } from '../../engine/host';
import type { CreateProjectResult } from '../../workflows/projects';
import type { AuthContext } from '../auth';

export const projectIdParam = z.object({ project_id: z.string().regex(idPattern('project'), 'not a project id') });

const projectName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, 'letters, digits, spaces, "_", "." and "-" only, starting with a letter or digit');

const project = z
  .object({
    id: z.string(),
    name: z.string(),
    region: z.string(),
    status: z.enum(['provisioning', 'ready', 'deleting', 'failed']),
    endpoint_id: z.string().nullable(),
    branch_id: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Project');

const createdProject = project
  .extend({
    connection_string: z.string(),
    pg_password: z.string(),
    host: z.string(),
    port: z.number(),
    user: z.string(),
    storage_driver: z.string(),
    user_can_create_roles: z.boolean(),
    operation_id: z.string(),
  })
  .openapi('CreatedProject');

const accepted = z.object({ operation_id: z.string(), status: z.literal('running'), project_id: z.string() }).openapi('Accepted');


/** Projects of an organization with their primary branch and endpoint. */
function projectQuery(deps: ApiDeps, orgId: string) {
  return deps.db
    .selectFrom('projects')
    .leftJoin('branches', (j) => j.onRef('branches.project_id', '=', 'projects.id').on('branches.is_primary', '=', true))
    .leftJoin('endpoints', 'endpoints.branch_id', 'branches.id')
    .select([
      'projects.id',
      'projects.name',
      'projects.region',
      'projects.status',
      'projects.created_at',
      'projects.updated_at',
      'branches.id as branch_id',
      'endpoints.id as endpoint_id',
    ])
    .where('projects.org_id', '=', orgId);
}

/** The org's project, or 404 — another organization's project is indistinguishable from none. */
export async function findProject(deps: ApiDeps, auth: AuthContext, projectId: string) {
  const row = await projectQuery(deps, auth.orgId).where('projects.id', '=', projectId).executeTakeFirst();
  if (!row) throw notFound('project', projectId);
  return row;
}

type ProjectView = Awaited<ReturnType<typeof findProject>>;

function view(p: ProjectView) {
  return {
    id: p.id,
    name: p.name,
    region: p.region,
    status: p.status,
    endpoint_id: p.endpoint_id ?? null,
    branch_id: p.branch_id ?? null,
    created_at: new Date(p.created_at).toISOString(),
    updated_at: new Date(p.updated_at).toISOString(),
  };
}

export function registerProjectRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const region = z.enum(deps.config.regions as [string, ...string[]], { message: `unknown region; one of: ${deps.config.regions.join(', ')}` });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects',
    summary: 'List projects',
    tags: ['Projects'],
    action: 'project.list',
    query: pagination,
    responses: { 200: { description: 'Projects of the organization, newest first', schema: z.array(project) } },
    handler: async (ctx, { query, auth }) => {
      const rows = await projectQuery(deps, auth.orgId)
        .orderBy('projects.created_at', 'desc')
        .orderBy('projects.id')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      const total = await deps.db
        .selectFrom('projects')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('org_id', '=', auth.orgId)
        .executeTakeFirstOrThrow();
      ctx.set('X-Total-Count', String(total.n));
      ctx.body = rows.map(view);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects',
    summary: 'Create a project: a Postgres cluster, its main branch and a running endpoint',
    tags: ['Projects'],
    action: 'project.create',
    body: z.object({ name: projectName, region: region.default(deps.config.regions[0]) }).strict(),
    responses: {
      201: { description: 'Created; the password is shown only here', schema: createdProject },
      202: { description: 'Still provisioning; poll the operation', schema: accepted },
    },
    handler: async (ctx, { body, auth }) => {
      const projectId = newId('project');
      const branchId = newId('branch');
      const endpointId = newId('endpoint');
      const outcome = await runOperation<CreateProjectResult>(deps, {
        auth,
        projectId,
        branchId,
        kind: 'project.create',
        workflowType: 'createProject',
        workflowId: `project-create/${projectId}`,
        args: (operationId) => [
          { operationId, projectId, branchId, endpointId, orgId: auth.orgId, name: body.name, region: body.region, hostId: deps.config.hostId },
        ],
      });
      if (!outcome.done) {
        answerAccepted(ctx, projectId, outcome.operationId, { status: 'running', project_id: projectId });
        return;
      }
      const p = await findProject(deps, auth, projectId);
      const ep = await deps.db.selectFrom('endpoints').select('pg_password_enc').where('id', '=', endpointId).executeTakeFirstOrThrow();
      const password = decryptSecret(ep.pg_password_enc, deps.secretKey);
      const host = deps.config.publicHost;
      const port = deps.proxyPort();
      ctx.status = 201;
      ctx.body = {
        ...view(p),
        connection_string: proxyConnectionString({ user: USER_ROLE, password, host, port, endpointId }),
        pg_password: password,
        host,
        port,
        user: USER_ROLE,
        storage_driver: outcome.result.driver,
        user_can_create_roles: outcome.result.userCanCreateRoles,
        operation_id: outcome.operationId,
      };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}',
    summary: 'Get a project',
    tags: ['Projects'],
    action: 'project.read',
    params: projectIdParam,
    responses: { 200: { description: 'The project', schema: project } },
    handler: async (ctx, { params, auth }) => {
      ctx.body = view(await findProject(deps, auth, params.project_id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/projects/{project_id}',
    summary: 'Rename a project',
    tags: ['Projects'],
    action: 'project.update',
    params: projectIdParam,
    body: z.object({ name: projectName }).strict(),
    responses: { 200: { description: 'The updated project', schema: project } },
    handler: async (ctx, { params, body, auth }) => {
      const p = await findProject(deps, auth, params.project_id);
      if (p.status === 'deleting') throw conflict(`project ${p.id} is being deleted`);
      await deps.db
        .updateTable('projects')
        .set({ name: body.name, updated_at: sql`now()` })
        .where('id', '=', p.id)
        .where('org_id', '=', auth.orgId)
        .execute();
      ctx.body = view(await findProject(deps, auth, p.id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}',
    summary: 'Delete a project, its computes and all its data. Irreversible.',
    tags: ['Projects'],
    action: 'project.delete',
    params: projectIdParam,
    responses: {
      204: { description: 'Deleted' },
      202: { description: 'Deletion still running; poll the operation', schema: accepted },
    },
    handler: async (ctx, { params, auth }) => {
      const p = await findProject(deps, auth, params.project_id);
      if (p.status === 'provisioning') throw conflict(`project ${p.id} is still being created; retry when it is ready`);
      const outcome = await runOperation<void>(deps, {
        auth,
        projectId: p.id,
        kind: 'project.delete',
        workflowType: 'deleteProject',
        workflowId: `project-delete/${p.id}`,
        args: (operationId) => [{ operationId, projectId: p.id }],
      });
      if (!outcome.done) {
        answerAccepted(ctx, p.id, outcome.operationId, { status: 'running', project_id: p.id });
        return;
      }
      ctx.status = 204;
    },
  });
}
