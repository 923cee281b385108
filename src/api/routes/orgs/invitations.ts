import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, conflict, notFound, refusalError } from '../../errors';
import { invitationParams } from '../../params';
import { answerPage, pagination } from '../../pagination';
import { invitationSchema, invitationView } from '../../views/orgs';
import { auditInTransaction } from '../../audit';
import { startAfterCommit } from '../../events';
import { emitEvent } from '../../../db/queries/webhooks';
import { recordAudit } from '../../../db/queries/audit';
import { findActiveMember, issueApiKey } from '../../../db/apiKeys';
import { displayPrefix, generateInvitationToken, hashApiKey, INVITATION_TOKEN_RE } from '../../../domain/apiKeys';
import { newId } from '../../../domain/ids';
import { ROLES } from '../../../domain/rbac';
import { invitationState, inviteRefusal } from '../../../domain/members';
import { isUniqueViolation } from '../../../db';

const email = z
  .string()
  .max(254)
  .email('must be an e-mail address')
  .transform((s) => s.trim());

export function registerInvitationRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/invitations',
    summary: 'List pending invitations (not accepted, cancelled or expired)',
    tags: ['Members'],
    action: 'invitation.read',
    query: pagination,
    responses: { 200: { description: 'Pending invitations, newest first', schema: z.array(invitationSchema) } },
    handler: async (ctx, { query, auth }) => {
      const base = deps.db
        .selectFrom('invitations')
        .where('org_id', '=', auth.orgId)
        .where('accepted_at', 'is', null)
        .where('cancelled_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`);
      const [rows, total] = await Promise.all([
        base.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(query.limit).offset(query.offset).execute(),
        base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
      ]);
      answerPage(ctx, total.n, rows.map(invitationView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/orgs/invitations',
    summary:
      'Invite someone by e-mail. The platform sends no mail: the one-time token comes back here, once, and in the member.invited webhook event for a mailer to deliver',
    tags: ['Members'],
    action: 'invitation.create',
    body: z.object({ email, role: z.enum(ROLES).default('developer') }).strict(),
    responses: {
      201: { description: 'Invited', schema: invitationSchema.extend({ token: z.string().openapi({ description: 'Shown once; POST /v1/orgs/invitations/accept takes it' }) }) },
    },
    handler: async (ctx, { body, auth }) => {
      const refusal = inviteRefusal({ actor: auth.role, role: body.role });
      if (refusal) throw refusalError(refusal);
      const token = generateInvitationToken();
      const id = newId('invitation');
      const expires = new Date(Date.now() + deps.config.invitationTtlHours * 3_600_000);
      const { row, deliveries } = await deps.db.transaction().execute(async (tx) => {
        const member = await findActiveMember(tx, auth.orgId, body.email);
        if (member) throw conflict(`${body.email} is already a member (${member.id})`);
        const row = await tx
          .insertInto('invitations')
          .values({ id, org_id: auth.orgId, email: body.email, role: body.role, token_hash: hashApiKey(token), invited_by: auth.memberId ?? null, expires_at: expires })
          .returningAll()
          .executeTakeFirstOrThrow();
        await auditInTransaction(tx, ctx, { action: 'invitation.create', target: id, status: 201, details: { email: body.email, role: body.role } });
        const deliveries = await emitEvent(tx, {
          orgId: auth.orgId,
          type: 'member.invited',
          data: { invitation_id: id, email: body.email, role: body.role, token, expires_at: expires.toISOString() },
        });
        return { row, deliveries };
      });
      startAfterCommit(deps, deliveries);
      ctx.status = 201;
      ctx.body = { ...invitationView(row), token };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/orgs/invitations/{inv_id}',
    summary: 'Cancel a pending invitation; its token stops working',
    tags: ['Members'],
    action: 'invitation.delete',
    params: invitationParams,
    responses: { 204: { description: 'Cancelled' } },
    handler: async (ctx, { params, auth }) => {
      const inv = await deps.db.selectFrom('invitations').selectAll().where('id', '=', params.inv_id).where('org_id', '=', auth.orgId).executeTakeFirst();
      if (!inv) throw notFound('invitation', params.inv_id);
      const state = invitationState(inv);
      if (state !== 'pending') throw conflict(`invitation ${inv.id} is ${state}; only a pending one can be cancelled`);
      await deps.db.updateTable('invitations').set({ cancelled_at: sql`now()` }).where('id', '=', inv.id).where('accepted_at', 'is', null).execute();
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/orgs/invitations/accept',
    summary: 'Accept an invitation with its one-time token: makes the member and their first API key (shown once)',
    tags: ['Members'],
    action: null,
    body: z.object({ token: z.string().regex(INVITATION_TOKEN_RE, 'not an invitation token') }).strict(),
    responses: {
      201: {
        description: 'Joined',
        schema: z.object({
          user_id: z.string(),
          email: z.string(),
          role: z.enum(ROLES),
          api_key: z.object({ id: z.string(), key: z.string(), prefix: z.string(), expires_at: z.string() }),
        }),
      },
      404: { description: 'No such invitation' },
      410: { description: 'The invitation was accepted, cancelled or has expired' },
    },
    handler: async (ctx, { body }) => {
      const result = await deps.db.transaction().execute(async (tx) => {
        const inv = await tx.selectFrom('invitations').selectAll().where('token_hash', '=', hashApiKey(body.token)).forUpdate().executeTakeFirst();
        if (!inv) throw notFound('invitation');
        const state = invitationState(inv);
        if (state !== 'pending') throw new ApiError(410, 'invitation_unusable', `this invitation is ${state}; ask for a new one`);
        const memberId = newId('member');
        try {
          await tx.insertInto('members').values({ id: memberId, org_id: inv.org_id, email: inv.email, role: inv.role }).execute();
        } catch (err) {
          if (isUniqueViolation(err)) throw conflict(`${inv.email} is already a member`);
          throw err;
        }
        await tx.updateTable('invitations').set({ accepted_at: sql`now()`, member_id: memberId }).where('id', '=', inv.id).execute();
        // The member's first key follows the member's role (a key acts as the lower of both).
        const issued = await issueApiKey(tx, { orgId: inv.org_id, role: 'owner', name: `${inv.email} (invitation)`, ttlDays: deps.config.apiKeyTtlDays, memberId });
        await recordAudit(tx, {
          orgId: inv.org_id,
          actor: inv.email,
          actorMemberId: memberId,
          actorKeyId: issued.id,
          action: 'invitation.accept',
          target: memberId,
          outcome: 'succeeded',
          status: 201,
          requestId: ctx.state.requestId,
          details: { invitation_id: inv.id, role: inv.role },
        });
        const deliveries = await emitEvent(tx, { orgId: inv.org_id, type: 'member.joined', data: { user_id: memberId, email: inv.email, role: inv.role, invitation_id: inv.id } });
        return { inv, memberId, issued, deliveries };
      });
      startAfterCommit(deps, result.deliveries);
      ctx.status = 201;
      ctx.body = {
        user_id: result.memberId,
        email: result.inv.email,
        role: result.inv.role,
        api_key: { id: result.issued.id, key: result.issued.key, prefix: displayPrefix(result.issued.key), expires_at: new Date(result.issued.row.expires_at).toISOString() },
      };
    },
  });
}
