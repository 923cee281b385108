import http from 'node:http';
import https from 'node:https';
import dns from 'node:dns';
import { sql } from 'kysely';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db';
import { decryptSecret } from '../domain/secrets';
import { isPrivateAddress } from '../domain/webhooks';

export interface WebhookDeps {
  db: Db;
  secretKey: Buffer;
  allowPrivate: boolean;
  timeoutMs: number;
}

/** The most of a receiver's answer kept in an attempt's error. */
const ERROR_CHARS = 300;

/**
 * Resolves like the system does, then refuses private and loopback addresses unless the
 * deployment allows them: checked on the address actually connected to, so a name that
 * resolves to the platform's own network (or rebinds to it) is refused too.
 */
function guardedLookup(allowPrivate: boolean): typeof dns.lookup {
  return ((hostname: string, options: dns.LookupOptions, callback: (...a: unknown[]) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err);
      const list = addresses as dns.LookupAddress[];
      const bad = allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad) return callback(Object.assign(new Error(`${hostname} resolves to ${bad.address}, a private or loopback address`), { code: 'EPRIVATE' }));
      if (options.all) return callback(null, list);
      callback(null, list[0].address, list[0].family);
    });
  }) as unknown as typeof dns.lookup;
}

function post(url: string, body: string, headers: Record<string, string>, o: { allowPrivate: boolean; timeoutMs: number }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.request(
      u,
      { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'Lampion-Webhooks/1' }, lookup: guardedLookup(o.allowPrivate), timeout: o.timeoutMs },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (text.length < ERROR_CHARS) text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function createWebhookActivities(deps: WebhookDeps) {
  const { db } = deps;
  return {
    /**
     * One attempt: sign with the webhook's secret (Standard Webhooks: webhook-id is the delivery,
     * the same on every retry), POST, record the attempt. A non-2xx or no answer throws, and
     * Temporal's retry policy schedules the next attempt; a deleted or disabled webhook ends it.
     */
    async sendWebhookDelivery(deliveryId: string): Promise<{ status: 'delivered'; attempt: number }> {
      const attempt = Context.current().info.attempt;
      const row = await db
        .selectFrom('webhook_deliveries as d')
        .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
        .select(['d.id', 'd.payload', 'd.status', 'w.url', 'w.enabled', 'w.deleted_at', 'w.secret_enc'])
        .where('d.id', '=', deliveryId)
        .executeTakeFirst();
      if (!row || row.deleted_at || !row.enabled) throw ApplicationFailure.nonRetryable('the webhook was deleted or disabled', 'WebhookGone');
      if (row.status === 'delivered') return { status: 'delivered', attempt };
      const body = JSON.stringify(row.payload);
      const timestamp = new Date();
      const signature = new Webhook(decryptSecret(row.secret_enc, deps.secretKey)).sign(deliveryId, timestamp, body);
      const headers = { 'webhook-id': deliveryId, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': signature };
      const started = Date.now();
      let status: number | null = null;
      let error: string | null = null;
      try {
        const res = await post(row.url, body, headers, deps);
        status = res.status;
        if (status < 200 || status >= 300) error = `HTTP ${status}: ${res.text.slice(0, ERROR_CHARS)}`;
      } catch (err) {
        error = (err as Error).message.slice(0, ERROR_CHARS);
      }
      const ok = error === null;
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('webhook_attempts')
          .values({ delivery_id: deliveryId, attempt, status, error, duration_ms: Date.now() - started })
          .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doUpdateSet({ status, error, duration_ms: Date.now() - started, at: sql`now()` }))
          .execute();
        await tx
          .updateTable('webhook_deliveries')
          .set({ attempts: attempt, last_status: status, last_error: error, ...(ok ? { status: 'delivered', delivered_at: sql`now()` } : {}) })
          .where('id', '=', deliveryId)
          .execute();
      });
      if (!ok) throw ApplicationFailure.retryable(`delivery ${deliveryId} attempt ${attempt}: ${error}`, 'WebhookRefused');
      return { status: 'delivered', attempt };
    },

    /** The retry window closed (failed) or the webhook went away (cancelled). */
    async finishWebhookDelivery(i: { deliveryId: string; status: 'failed' | 'cancelled' }): Promise<void> {
      await db.updateTable('webhook_deliveries').set({ status: i.status }).where('id', '=', i.deliveryId).where('status', '=', 'pending').execute();
    },
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
