import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { notFound, refusalError } from '../../errors';
import { apiKeyParams, projectIdParam } from '../../params';
import { answerPage, pagination } from '../../pagination';
import { apiKeySchema, apiKeyView } from '../../views/orgs';
import { auditInTransaction } from '../../audit';
import { forgetKeys, type AuthContext } from '../../auth';
import { startAfterCommit } from '../../events';
import { emitEvent } from '../../../db/queries/webhooks';
import { issueApiKey } from '../../../db/apiKeys';
import { hasRole, lowerRole, ROLES } from '../../../domain/rbac';
import { keyRole } from '../../../domain/members';
import { scopeOfNewKey } from '../../../domain/keyScope';
import { resourceName } from '../../../domain/names';
import type { ApiKeyRow, Db } from '../../../db';

/**
 * Admins see and revoke every key of the organization; everyone else their member's own. A
 * project-scoped key, whatever its role, only its member's keys scoped within its own projects.
 */
function visibleKeys(db: Db, auth: AuthContext) {
  let q = db.selectFrom('api_keys').where('org_id', '=', auth.orgId).where('revoked_at', 'is', null);
  const own = () => (auth.memberId ? q.where('member_id', '=', auth.memberId) : q.where('id', '=', auth.keyId));
  if (auth.projectIds) return own().where('project_ids', 'is not', null).where(sql<boolean>`project_ids <@ ${auth.projectIds}::text[]`);
  if (!hasRole(auth.role, 'admin')) q = own();
  return q;
}

/** The role a key acts with: its own, lowered to its member's. */
async function withActingRoles<K extends ApiKeyRow>(db: Db, keys: K[]): Promise<K[]> {
  const ids = [...new Set(keys.map((k) => k.member_id).filter((m): m is string => !!m))];
  const roles = new Map(ids.length ? (await db.selectFrom('members').select(['id', 'role']).where('id', 'in', ids).execute()).map((m) => [m.id, m.role]) : []);
  return keys.map((k) => {
    const m = k.member_id ? roles.get(k.member_id) : undefined;
    return m ? { ...k, role: lowerRole(k.role, m) } : k;
  });
}

export function registerApiKeyRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/api-keys',
    summary: 'List API keys that are not revoked (prefixes only): all of them for admins, your own otherwise',
    tags: ['API keys'],
    action: 'api_key.read',
    query: pagination,
    responses: { 200: { description: 'Keys, newest first', schema: z.array(apiKeySchema) } },
    handler: async (ctx, { query, auth }) => {
      const [rows, total] = await Promise.all([
        visibleKeys(deps.db, auth).selectAll().orderBy('created_at', 'desc').orderBy('id').limit(query.limit).offset(query.offset).execute(),
        visibleKeys(deps.db, auth).select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
      ]);
      answerPage(ctx, total.n, (await withActingRoles(deps.db, rows)).map(apiKeyView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/orgs/api-keys',
    summary: 'Create an API key for yourself: the full key is in this answer only',
    tags: ['API keys'],
    action: 'api_key.create',
    body: z
      .object({
        name: resourceName(),
        role: z.enum(ROLES).optional().openapi({ description: 'At most your own role; default developer (or your role when it is lower)' }),
        expires_in_days: z.number().int().min(1).max(3650).optional().openapi({ description: 'Default LAMPION_API_KEY_TTL_DAYS (90)' }),
        project_ids: z
          .array(projectIdParam.shape.project_id)
          .min(1)
          .max(100)
          .optional()
          .openapi({ description: 'Only these projects (any other is 404 to the key; organization routes 403). Default: the whole organization, or the creating key’s projects' }),
      })
      .strict(),
    responses: { 201: { description: 'Created', schema: apiKeySchema.extend({ key: z.string() }) } },
    handler: async (ctx, { body, auth }) => {
      const decided = keyRole({ creator: auth.role, requested: body.role });
      if ('status' in decided) throw refusalError(decided);
      const scope = scopeOfNewKey(auth.projectIds, body.project_ids);
      if ('refused' in scope) throw refusalError({ status: 403, message: `this key cannot give access to ${scope.refused.join(', ')}: it does not see them` });
      if (scope.projectIds) {
        const found = await deps.db.selectFrom('projects').select('id').where('org_id', '=', auth.orgId).where('id', 'in', scope.projectIds).execute();
        const missing = scope.projectIds.filter((p) => !found.some((f) => f.id === p));
        if (missing.length) throw notFound('project', missing.join(', '));
      }
      const { row, key, deliveries } = await deps.db.transaction().execute(async (tx) => {
        const issued = await issueApiKey(tx, {
          orgId: auth.orgId,
          role: decided.role,
          name: body.name,
          ttlDays: body.expires_in_days ?? deps.config.apiKeyTtlDays,
          memberId: auth.memberId ?? null,
          projectIds: scope.projectIds,
        });
        const { row } = issued;
        await auditInTransaction(tx, ctx, { action: 'api_key.create', target: issued.id, status: 201, details: { name: body.name, role: decided.role } });
        const deliveries = await emitEvent(tx, { orgId: auth.orgId, type: 'api_key.created', data: { key_id: issued.id, name: body.name, role: decided.role, prefix: row.prefix, user_id: row.member_id } });
        return { row, key: issued.key, deliveries };
      });
      startAfterCommit(deps, deliveries);
      ctx.status = 201;
      ctx.body = { ...apiKeyView(row), key };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/orgs/api-keys/{key_id}',
    summary: 'Revoke an API key: it answers 401 from now on',
    tags: ['API keys'],
    action: 'api_key.delete',
    params: apiKeyParams,
    responses: { 204: { description: 'Revoked' } },
    handler: async (ctx, { params, auth }) => {
      const deliveries = await deps.db.transaction().execute(async (tx) => {
        const key = await visibleKeys(tx, auth).selectAll().where('id', '=', params.key_id).executeTakeFirst();
        if (!key) throw notFound('API key', params.key_id);
        await tx.updateTable('api_keys').set({ revoked_at: sql`now()` }).where('id', '=', key.id).execute();
        await auditInTransaction(tx, ctx, { action: 'api_key.delete', target: key.id, status: 204, details: { name: key.name } });
        return emitEvent(tx, { orgId: auth.orgId, type: 'api_key.revoked', data: { key_id: key.id, name: key.name, user_id: key.member_id } });
      });
      forgetKeys(deps);
      startAfterCommit(deps, deliveries);
      ctx.status = 204;
    },
  });
}
