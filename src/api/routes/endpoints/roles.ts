import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, notFound } from '../../errors';
import { endpointParams, identifier } from '../../params';
import { consoleEndpoint, consoleOptions, inTransaction, queryRows, withSession } from '../../executor';
import { alterRolePasswordSql, createRoleSql, grantRoleToAdminSql, dropRoleSql, isManagedRole, listRolesSql, roleExistsSql } from '../../../domain/pgsql/roles';
import { SYSTEM_ROLE, USER_ROLE } from '../../../domain/roles';
import { randomToken } from '../../../domain/ids';

/** Roles of the platform the API never lists or changes: its internal superuser. */
const PLATFORM_ROLES = [SYSTEM_ROLE] as const;

const roleSchema = z.object({ name: z.string(), is_superuser: z.boolean(), can_login: z.boolean(), can_create_db: z.boolean(), can_create_role: z.boolean() }).openapi('Role');
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
const roleName = identifier('name').refine((n) => isManagedRole(n, PLATFORM_ROLES), { message: 'roles starting with pg_ and the platform\'s roles are not managed here' });
const password = z.string().min(8).max(256).refine((p) => !/[\u0000-\u001f\u007f]/.test(p), { message: 'must not contain control characters' });

export function registerRoleRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/roles';
  defineRoute(router, registry, deps, {
    method: 'get',
    path: base,
    summary: 'List roles (not pg_* and not the platform\'s own); cloud_admin is not a superuser',
    tags: ['Roles'],
    action: 'schema.read',
    params: endpointParams,
    query: pagination,
    responses: { 200: { description: 'Roles', schema: z.array(roleSchema) } },
    handler: async (ctx, { params, auth, query }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      answerSlice(ctx, query, await withSession(deps, auth, ep, consoleOptions(deps), (s) => queryRows(s, listRolesSql(PLATFORM_ROLES))));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: base,
    summary: 'Create a role (never a superuser; cloud_admin becomes a member, without inheriting, so it can hand the role objects). The password is sent to Postgres as a SCRAM verifier, never as text',
    tags: ['Roles'],
    action: 'role.write',
    params: endpointParams,
    body: z.object({ name: roleName, password: password.optional(), can_login: z.boolean().default(true) }),
    responses: {
      201: { description: 'Created', schema: z.object({ name: z.string(), can_login: z.boolean() }) },
      409: { description: 'A role of that name exists (42710)', schema: errorEnvelope },
    },
    handler: async (ctx, { params, body, auth }) => {
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      await withSession(deps, auth, ep, consoleOptions(deps), (s) =>
        inTransaction(s, async () => {
          await queryRows(s, createRoleSql(body.name, { canLogin: body.can_login, password: body.password }));
          await queryRows(s, grantRoleToAdminSql(body.name, USER_ROLE, ep.pg_version));
        }),
      );
      ctx.status = 201;
      ctx.body = { name: body.name, can_login: body.can_login };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/{name}`,
    summary: 'Drop a role; a role that owns objects or holds privileges is refused with the reason (2BP01)',
    tags: ['Roles'],
    action: 'role.write',
    params: endpointParams.extend({ name: roleName }),
    responses: {
      204: { description: 'Dropped' },
      404: { description: 'No such role', schema: errorEnvelope },
      409: { description: 'The role owns objects or has privileges (details.detail lists them), or it is cloud_admin', schema: errorEnvelope },
    },
    handler: async (ctx, { params, auth }) => {
      if (params.name === USER_ROLE) throw new ApiError(409, 'conflict', `${USER_ROLE} is the endpoint's own role; it cannot be dropped`);
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      await withSession(deps, auth, ep, consoleOptions(deps), async (s) => {
        if (!(await queryRows(s, roleExistsSql(params.name))).length) throw notFound('role', params.name);
        await queryRows(s, dropRoleSql(params.name));
      });
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/{name}/reset-password`,
    summary: 'Give a role a new generated password, shown once in this answer and stored nowhere by the platform',
    tags: ['Roles'],
    action: 'role.write',
    params: endpointParams.extend({ name: roleName }),
    responses: {
      200: { description: 'The new password (only here)', schema: z.object({ name: z.string(), password: z.string() }) },
      404: { description: 'No such role', schema: errorEnvelope },
      409: { description: 'cloud_admin: its password is the endpoint\'s, in its connection string', schema: errorEnvelope },
    },
    handler: async (ctx, { params, auth }) => {
      if (params.name === USER_ROLE) throw new ApiError(409, 'conflict', `${USER_ROLE}'s password is the endpoint's own (see its connection string); it is not reset here`);
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const pw = randomToken(24, PASSWORD_ALPHABET);
      await withSession(deps, auth, ep, consoleOptions(deps), async (s) => {
        if (!(await queryRows(s, roleExistsSql(params.name))).length) throw notFound('role', params.name);
        await queryRows(s, alterRolePasswordSql(params.name, pw));
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { name: params.name, password: pw };
    },
  });
}
