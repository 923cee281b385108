import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, conflict, notFound } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { answerPage, pagination } from '../pagination';
import { projectIdParam } from '../params';
import { publicAccess, requireProject } from '../lookup';
import { orgPlan } from '../../db/queries/organizations';
import { projectLimitReached } from '../../domain/plans';
import { createdProjectSchema, projectAcceptedSchema, projectSchema, projectView } from '../views/projects';
import { connectionFields } from '../views/endpoints';
import { countLiveProjects, countProjects, listProjects, projectHasMaskedBranch, renameProject } from '../../db/queries/projects';
import { endpointById } from '../../db/queries/endpoints';
import { newId } from '../../domain/ids';
import { USER_ROLE } from '../../domain/roles';
import { resourceName } from '../../domain/names';
import { projectCreate, projectDelete } from '../../operations';

const projectName = resourceName(/^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, 'letters, digits, spaces, "_", "." and "-" only, starting with a letter or digit');

export function registerProjectRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const region = z.enum(deps.config.regions as [string, ...string[]], { message: `unknown region; one of: ${deps.config.regions.join(', ')}` });
  const majors = deps.config.pgInstalls.map((i) => i.major);
  const newestMajor = majors[majors.length - 1];
  const pgVersion = z
    .number()
    .int()
    .refine((v) => majors.includes(v), { message: `unsupported Postgres major; this platform runs ${majors.join(', ')}` });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects',
    summary: 'List projects',
    tags: ['Projects'],
    action: 'project.browse',
    query: pagination,
    responses: { 200: { description: 'Projects of the organization, newest first (for an analyst: those with a masked branch)', schema: z.array(projectSchema) } },
    handler: async (ctx, { query, auth }) => {
      const scope = { maskedOnly: auth.role === 'analyst', projectIds: auth.projectIds };
      const rows = await listProjects(deps.db, auth.orgId, query, scope);
      answerPage(ctx, await countProjects(deps.db, auth.orgId, scope), rows.map(projectView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects',
    summary: 'Create a project: a Postgres cluster, its main branch and a running endpoint',
    tags: ['Projects'],
    action: 'project.create',
    body: z
      .object({
        name: projectName,
        region: region.default(deps.config.regions[0]),
        pg_version: pgVersion.default(newestMajor).openapi({ description: `Postgres major; installed here: ${majors.join(', ')}` }),
      })
      .strict(),
    responses: {
      201: { description: 'Created; the password is shown only here', schema: createdProjectSchema },
      202: { description: 'Still provisioning; poll the operation', schema: projectAcceptedSchema },
    },
    handler: async (ctx, { body, auth }) => {
      // Checked here for a quick answer, and again where the row is made (concurrent creates).
      const refused = projectLimitReached(await orgPlan(deps.db, auth.orgId), await countLiveProjects(deps.db, auth.orgId));
      if (refused) throw new ApiError(403, 'plan_limit_exceeded', refused, { limit: 'max_projects' });
      const projectId = newId('project');
      const endpointId = newId('endpoint');
      const outcome = await runOperation(deps, auth, projectCreate, {
        projectId,
        branchId: newId('branch'),
        endpointId,
        orgId: auth.orgId,
        name: body.name,
        region: body.region,
        pgVersion: body.pg_version,
        hostId: deps.config.hostId,
      });
      if (!outcome.done) return answerAccepted(ctx, projectId, outcome.operationId, { status: 'running', project_id: projectId });
      const p = await requireProject(deps, auth, projectId);
      const ep = (await endpointById(deps.db, endpointId))!;
      // project.create needs a role that may see connection secrets: the password is in this answer.
      const access = publicAccess(deps, auth, ep);
      ctx.status = 201;
      ctx.body = {
        ...projectView(p),
        ...(connectionFields(endpointId, access) as { connection_string: string; pg_password: string }),
        host: access.host,
        port: access.port,
        user: USER_ROLE,
        storage_driver: outcome.result.driver,
        user_can_create_roles: outcome.result.userCanCreateRoles,
        operation_id: outcome.operationId,
      } satisfies z.infer<typeof createdProjectSchema>;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}',
    summary: 'Get a project',
    tags: ['Projects'],
    action: 'project.browse',
    params: projectIdParam,
    responses: { 200: { description: 'The project', schema: projectSchema } },
    handler: async (ctx, { params, auth }) => {
      const p = await requireProject(deps, auth, params.project_id);
      if (auth.role === 'analyst' && !(await projectHasMaskedBranch(deps.db, p.id))) throw notFound('project', p.id);
      ctx.body = projectView(p);
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
    responses: { 200: { description: 'The updated project', schema: projectSchema } },
    handler: async (ctx, { params, body, auth }) => {
      const p = await requireProject(deps, auth, params.project_id);
      if (p.status === 'deleting') throw conflict(`project ${p.id} is being deleted`);
      await renameProject(deps.db, auth.orgId, p.id, body.name);
      ctx.body = projectView(await requireProject(deps, auth, p.id));
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
      202: { description: 'Deletion still running; poll the operation', schema: projectAcceptedSchema },
      409: { description: 'Still being created' },
    },
    handler: async (ctx, { params, auth }) => {
      const p = await requireProject(deps, auth, params.project_id);
      if (p.status === 'provisioning') throw conflict(`project ${p.id} is still being created; retry when it is ready`);
      const outcome = await runOperation(deps, auth, projectDelete, { projectId: p.id });
      if (!outcome.done) return answerAccepted(ctx, p.id, outcome.operationId, { status: 'running', project_id: p.id });
      ctx.status = 204;
    },
  });
}
