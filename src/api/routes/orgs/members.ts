import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { notFound, refusalError } from '../../errors';
import { memberParams } from '../../params';
import { answerPage, pagination } from '../../pagination';
import { memberSchema, memberView } from '../../views/orgs';
import { auditInTransaction } from '../../audit';
import { forgetKeys } from '../../auth';
import { startAfterCommit } from '../../events';
import { emitEvent } from '../../../db/queries/webhooks';
import type { Db } from '../../../db';
import { ROLES } from '../../../domain/rbac';
import { removalRefusal, roleChangeRefusal, transferRefusal } from '../../../domain/members';

/** The organization's active members, locked: owner counts hold until the change commits. */
async function lockedMembers(tx: Db, orgId: string) {
  return tx.selectFrom('members').selectAll().where('org_id', '=', orgId).where('removed_at', 'is', null).orderBy('id').forUpdate().execute();
}

export function registerMemberRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/members',
    summary: 'List the organization’s members',
    tags: ['Members'],
    action: 'member.read',
    query: pagination,
    responses: { 200: { description: 'Members, oldest first; X-Total-Count has the total', schema: z.array(memberSchema) } },
    handler: async (ctx, { query, auth }) => {
      const base = deps.db.selectFrom('members').where('org_id', '=', auth.orgId).where('removed_at', 'is', null);
      const [rows, total] = await Promise.all([
        base.selectAll().orderBy('created_at').orderBy('id').limit(query.limit).offset(query.offset).execute(),
        base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
      ]);
      answerPage(ctx, total.n, rows.map(memberView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/orgs/members/{uid}/role',
    summary: 'Change a member’s role (only an owner grants owner or changes an owner; the last owner stays)',
    tags: ['Members'],
    action: 'member.update',
    params: memberParams,
    body: z.object({ role: z.enum(ROLES) }).strict(),
    responses: { 200: { description: 'The new role', schema: z.object({ user_id: z.string(), role: z.enum(ROLES) }) } },
    handler: async (ctx, { params, body, auth }) => {
      const deliveries = await deps.db.transaction().execute(async (tx) => {
        const members = await lockedMembers(tx, auth.orgId);
        const m = members.find((x) => x.id === params.uid);
        if (!m) throw notFound('member', params.uid);
        const refusal = roleChangeRefusal({ actor: auth.role, current: m.role, next: body.role, owners: members.filter((x) => x.role === 'owner').length });
        if (refusal) throw refusalError(refusal);
        await tx.updateTable('members').set({ role: body.role }).where('id', '=', m.id).execute();
        await auditInTransaction(tx, ctx, { action: 'member.update', target: m.id, status: 200, details: { email: m.email, from: m.role, to: body.role } });
        return emitEvent(tx, { orgId: auth.orgId, type: 'member.role_changed', data: { user_id: m.id, email: m.email, from: m.role, to: body.role } });
      });
      forgetKeys(deps);
      startAfterCommit(deps, deliveries);
      ctx.body = { user_id: params.uid, role: body.role };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/orgs/members/{uid}',
    summary: 'Remove a member; every key of theirs stops working at once',
    tags: ['Members'],
    action: 'member.delete',
    params: memberParams,
    responses: { 204: { description: 'Removed' } },
    handler: async (ctx, { params, auth }) => {
      const deliveries = await deps.db.transaction().execute(async (tx) => {
        const members = await lockedMembers(tx, auth.orgId);
        const m = members.find((x) => x.id === params.uid);
        if (!m) throw notFound('member', params.uid);
        const refusal = removalRefusal({ actor: auth.role, current: m.role, owners: members.filter((x) => x.role === 'owner').length });
        if (refusal) throw refusalError(refusal);
        await tx.updateTable('members').set({ removed_at: sql`now()` }).where('id', '=', m.id).execute();
        const revoked = await tx.updateTable('api_keys').set({ revoked_at: sql`now()` }).where('member_id', '=', m.id).where('revoked_at', 'is', null).returning('id').execute();
        await auditInTransaction(tx, ctx, { action: 'member.delete', target: m.id, status: 204, details: { email: m.email, role: m.role, keys_revoked: revoked.length } });
        return emitEvent(tx, { orgId: auth.orgId, type: 'member.removed', data: { user_id: m.id, email: m.email } });
      });
      forgetKeys(deps);
      startAfterCommit(deps, deliveries);
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/orgs/transfer-ownership',
    summary: 'Make another member the owner; the calling owner becomes an admin',
    tags: ['Members'],
    action: 'org.transfer_ownership',
    body: z.object({ user_id: memberParams.shape.uid }).strict(),
    responses: { 200: { description: 'Transferred', schema: z.object({ ok: z.literal(true) }) } },
    handler: async (ctx, { body, auth }) => {
      const deliveries = await deps.db.transaction().execute(async (tx) => {
        const members = await lockedMembers(tx, auth.orgId);
        const target = members.find((x) => x.id === body.user_id);
        if (!target) throw notFound('member', body.user_id);
        const refusal = transferRefusal({ actorMemberId: auth.memberId, targetMemberId: target.id });
        if (refusal) throw refusalError(refusal);
        const me = members.find((x) => x.id === auth.memberId);
        if (!me || me.role !== 'owner') throw refusalError({ status: 403, message: 'only an owner member can transfer ownership' });
        await tx.updateTable('members').set({ role: 'owner' }).where('id', '=', target.id).execute();
        await tx.updateTable('members').set({ role: 'admin' }).where('id', '=', me.id).execute();
        await auditInTransaction(tx, ctx, { action: 'org.transfer_ownership', target: target.id, status: 200, details: { from: me.email, to: target.email } });
        return emitEvent(tx, { orgId: auth.orgId, type: 'member.ownership_transferred', data: { from_user_id: me.id, to_user_id: target.id, to_email: target.email } });
      });
      forgetKeys(deps);
      startAfterCommit(deps, deliveries);
      ctx.body = { ok: true };
    },
  });
}
