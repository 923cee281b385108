import type Koa from 'koa';
import type { Db } from '../db';
import type { AuditOutcome } from '../db/schema';
import { recordAudit } from '../db/queries/audit';
import type { AuthContext } from './auth';

export function outcomeOf(status: number): AuditOutcome {
  if (status === 202) return 'accepted';
  if (status < 400) return 'succeeded';
  return status === 403 ? 'refused' : 'failed';
}

/**
 * What a mutating request did, in the audit log: who (the key's member), the route's action,
 * the most specific resource it named (or made), the outcome and the request id. A handler that
 * wrote its entry in its own transaction marks ctx.state.audited (see `wantsAudit`, which the
 * caller checks first).
 */
export async function auditRequest(db: Db, ctx: Koa.Context, o: { action: string; status: number; params: Record<string, string> }): Promise<void> {
  const who = ctx.state.principal as AuthContext;
  const created = o.status < 300 && ctx.body && typeof ctx.body === 'object' && typeof (ctx.body as { id?: unknown }).id === 'string' ? (ctx.body as { id: string }).id : undefined;
  const named = Object.values(o.params ?? {}).filter((v) => typeof v === 'string');
  await recordAudit(db, {
    ...auditActor(who),
    action: o.action,
    target: created ?? named[named.length - 1] ?? null,
    outcome: outcomeOf(o.status),
    status: o.status,
    requestId: ctx.state.requestId,
    details: { method: ctx.method, path: ctx.path },
  });
}

export function auditActor(who: AuthContext) {
  return { orgId: who.orgId, actor: who.actor, actorMemberId: who.memberId ?? null, actorKeyId: who.keyId };
}

/** Whether the request still needs its entry: someone known made it, and nothing wrote one or ruled it out. */
export function wantsAudit(ctx: Koa.Context): boolean {
  return Boolean(ctx.state.principal) && !ctx.state.audited && !ctx.state.readOnly;
}

/**
 * A request on a mutating method that changed nothing by construction (the SQL API running only
 * plain reads): not an action, so no entry. A refusal (403) is audited all the same, before this.
 */
export function markReadOnly(ctx: Koa.Context): void {
  ctx.state.readOnly = true;
}

/** For handlers writing their entry in the transaction of the change itself. */
export async function auditInTransaction(tx: Db, ctx: Koa.Context, o: { action: string; target: string; status: number; details?: unknown }): Promise<void> {
  const who = ctx.state.principal as AuthContext;
  await recordAudit(tx, { ...auditActor(who), action: o.action, target: o.target, outcome: outcomeOf(o.status), status: o.status, requestId: ctx.state.requestId, details: o.details });
  ctx.state.audited = true;
}
