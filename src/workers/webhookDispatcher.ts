import type { Logger } from 'pino';
import type { Db } from '../db';
import { markDeliveriesStarted, unstartedDeliveries } from '../db/queries/webhooks';
import { DeliveryStarter, startDeliveries } from '../operations/webhooks';

/**
 * The outbox's reader: deliveries written with a change (an operation's end, above all) get
 * their workflow started here within `everyMs`; one the API started itself is found started
 * already (same workflow id) and only marked.
 */
export function superviseWebhookDeliveries(o: { db: Db; starter: DeliveryStarter; logger: Logger; everyMs?: number }): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const pass = async () => {
    try {
      for (;;) {
        const ids = await unstartedDeliveries(o.db);
        if (!ids.length) break;
        await markDeliveriesStarted(o.db, await startDeliveries(o.starter, ids));
        if (ids.length < 100 || stopped) break;
      }
    } catch (err) {
      o.logger.warn({ err: (err as Error).message }, 'webhook dispatch pass failed; next pass retries');
    }
    if (!stopped) timer = setTimeout(() => void pass(), o.everyMs ?? 1000).unref();
  };
  void pass();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
