import type Koa from 'koa';
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db';
import { ApiError } from './errors';

/** Printable ASCII, as Stripe and the IETF draft allow; a UUID fits. */
const KEY_RE = /^[\x21-\x7e]{1,255}$/;
/** A key is remembered this long; past it, the same key is a new request. */
const KEEP_HOURS = 24;
/** A first request still unanswered after this is taken to have died (its process did), and is run again. */
const STALE_MINUTES = 5;
/** Headers of the first answer that a replay repeats. */
const REPLAYED_HEADERS = ['location', 'x-total-count'];

/**
 * Idempotency-Key on a POST: the first request runs and its success is kept (status, body,
 * headers); a retry with the same key gets that answer again (Idempotent-Replayed: true) without
 * doing the work twice; the same key with another body is 422; while the first still runs, 409.
 * An error answer is not kept: nothing was done, so a retry runs again.
 */
export async function withIdempotency(db: Db, ctx: Koa.Context, caller: { orgId: string; keyId: string }, body: unknown, run: () => Promise<void>): Promise<void> {
  const { orgId } = caller;
  const key = ctx.get('idempotency-key');
  if (!key) return run();
  if (!KEY_RE.test(key)) {
    throw new ApiError(422, 'validation_failed', 'Idempotency-Key: must be 1–255 printable ASCII characters', {
      fields: [{ field: 'header.Idempotency-Key', message: 'must be 1–255 printable ASCII characters' }],
    });
  }
  // The caller's key is part of the request: another key sending the same Idempotency-Key and body
  // is refused (422), never answered with the first caller's result (which may hold a secret).
  const bodyHash = createHash('sha256').update(`${caller.keyId}\n${ctx.method} ${ctx.path}\n${JSON.stringify(body ?? null)}`).digest('hex');
  await db
    .deleteFrom('idempotency_keys')
    .where('org_id', '=', orgId)
    .where('key', '=', key)
    .where(sql<boolean>`created_at < now() - make_interval(hours => ${KEEP_HOURS})`)
    .execute();
  const claimed = await db
    .insertInto('idempotency_keys')
    .values({ org_id: orgId, key, method: ctx.method, path: ctx.path, body_hash: bodyHash, status: null })
    .onConflict((oc) => oc.columns(['org_id', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (!claimed) {
    const first = await db.selectFrom('idempotency_keys').selectAll().where('org_id', '=', orgId).where('key', '=', key).executeTakeFirstOrThrow();
    if (first.body_hash !== bodyHash) {
      throw new ApiError(422, 'idempotency_key_reused', `Idempotency-Key ${key} was used for a different request (${first.method} ${first.path} with another body)`);
    }
    if (first.status !== null) {
      ctx.status = first.status;
      for (const [k, v] of Object.entries(first.headers ?? {})) ctx.set(k, v);
      ctx.set('Idempotent-Replayed', 'true');
      ctx.body = first.response ?? undefined;
      ctx.state.audited = true; // the first request's entry stands for it
      return;
    }
    const retaken = await db
      .updateTable('idempotency_keys')
      .set({ created_at: sql`now()` })
      .where('org_id', '=', orgId)
      .where('key', '=', key)
      .where('status', 'is', null)
      .where(sql<boolean>`created_at < now() - make_interval(mins => ${STALE_MINUTES})`)
      .returning('key')
      .executeTakeFirst();
    if (!retaken) throw new ApiError(409, 'idempotency_key_in_use', `a request with Idempotency-Key ${key} is still running; retry when it has answered`);
  }
  try {
    await run();
  } catch (err) {
    await forget(db, orgId, key);
    throw err;
  }
  const json = ctx.body === undefined || (typeof ctx.body === 'object' && ctx.body !== null && !Buffer.isBuffer(ctx.body) && typeof (ctx.body as { pipe?: unknown }).pipe !== 'function');
  if (ctx.status >= 400 || !json) {
    await forget(db, orgId, key);
    return;
  }
  const headers = Object.fromEntries(REPLAYED_HEADERS.filter((h) => ctx.response.get(h)).map((h) => [h, String(ctx.response.get(h))]));
  await db
    .updateTable('idempotency_keys')
    .set({ status: ctx.status, response: ctx.body === undefined ? null : JSON.stringify(ctx.body), headers: JSON.stringify(headers) })
    .where('org_id', '=', orgId)
    .where('key', '=', key)
    .execute();
}

async function forget(db: Db, orgId: string, key: string): Promise<void> {
  await db.deleteFrom('idempotency_keys').where('org_id', '=', orgId).where('key', '=', key).execute();
}
