import { sql } from 'kysely';
import type { Db } from '..';
import { newId } from '../../domain/ids';
import { subscribes } from '../../domain/webhooks';

export interface EventEnvelope {
  /** Standard Webhooks' payload shape: the type, when it happened, what it is about. */
  type: string;
  timestamp: string;
  id: string;
  data: Record<string, unknown>;
}

/**
 * The outbox: one delivery per enabled webhook of the organization that subscribes to the
 * event, written with the caller's transaction so an event is never lost between the change and
 * its delivery. Returns the delivery ids, for the caller to start at once (the dispatcher starts
 * whatever it did not).
 */
export async function emitEvent(db: Db, e: { orgId: string; type: string; data: Record<string, unknown> }): Promise<string[]> {
  const hooks = await db.selectFrom('webhooks').select(['id', 'events']).where('org_id', '=', e.orgId).where('enabled', '=', true).where('deleted_at', 'is', null).execute();
  const targets = hooks.filter((h) => subscribes(h.events, e.type));
  if (!targets.length) return [];
  const envelope: EventEnvelope = { type: e.type, timestamp: new Date().toISOString(), id: newId('event'), data: e.data };
  const rows = targets.map((h) => ({
    id: newId('delivery'),
    webhook_id: h.id,
    org_id: e.orgId,
    event_id: envelope.id,
    event_type: e.type,
    payload: JSON.stringify(envelope),
  }));
  await db.insertInto('webhook_deliveries').values(rows).execute();
  return rows.map((r) => r.id);
}

export async function findWebhook(db: Db, orgId: string, id: string) {
  return db.selectFrom('webhooks').selectAll().where('org_id', '=', orgId).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
}

export async function listWebhooks(db: Db, orgId: string, page: { limit: number; offset: number }) {
  const base = db.selectFrom('webhooks').where('org_id', '=', orgId).where('deleted_at', 'is', null);
  const [rows, total] = await Promise.all([
    base.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(page.limit).offset(page.offset).execute(),
    base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}

export async function listDeliveries(db: Db, webhookId: string, page: { limit: number; offset: number }) {
  const base = db.selectFrom('webhook_deliveries').where('webhook_id', '=', webhookId);
  const [rows, total] = await Promise.all([
    base.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(page.limit).offset(page.offset).execute(),
    base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  const attempts = rows.length
    ? await db.selectFrom('webhook_attempts').selectAll().where('delivery_id', 'in', rows.map((r) => r.id)).orderBy('attempt').execute()
    : [];
  return { rows, attempts, total: total.n };
}

/** Deliveries whose workflow is not known to be started (an operation's, or one whose start after its transaction was lost). */
export async function unstartedDeliveries(db: Db, limit = 100): Promise<string[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('started_at', 'is', null)
    .orderBy('created_at')
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

export async function markDeliveriesStarted(db: Db, ids: string[]): Promise<void> {
  if (ids.length) await db.updateTable('webhook_deliveries').set({ started_at: sql`now()` }).where('id', 'in', ids).where('started_at', 'is', null).execute();
}
