import { sql } from 'kysely';
import type { Db } from '..';
import type { AuditOutcome } from '../schema';

export interface AuditEntry {
  orgId: string;
  actor: string;
  actorMemberId?: string | null;
  actorKeyId?: string | null;
  action: string;
  target?: string | null;
  outcome: AuditOutcome;
  status?: number | null;
  requestId?: string | null;
  details?: unknown;
}

/** The one writer of the audit log (append-only: nothing updates or deletes it). */
export async function recordAudit(db: Db, e: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      org_id: e.orgId,
      actor: e.actor,
      actor_member_id: e.actorMemberId ?? null,
      actor_key_id: e.actorKeyId ?? null,
      action: e.action,
      target: e.target ?? null,
      outcome: e.outcome,
      status: e.status ?? null,
      request_id: e.requestId ?? null,
      details: e.details === undefined ? null : JSON.stringify(e.details),
    })
    .execute();
}

export async function listAudit(db: Db, orgId: string, page: { limit: number; offset: number }) {
  const [rows, total] = await Promise.all([
    db.selectFrom('audit_log').selectAll().where('org_id', '=', orgId).orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute(),
    db.selectFrom('audit_log').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', orgId).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}
