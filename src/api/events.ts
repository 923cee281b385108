import type { ApiDeps } from './deps';
import { markDeliveriesStarted } from '../db/queries/webhooks';
import { startDeliveries } from '../operations/webhooks';

/**
 * After the transaction that wrote deliveries commits: start their workflows without making the
 * request wait. A start that fails is the dispatcher's to do (the rows stay unstarted).
 */
export function startAfterCommit(deps: ApiDeps, deliveryIds: string[]): void {
  if (!deliveryIds.length) return;
  void startDeliveries(deps.deliveries, deliveryIds)
    .then((started) => markDeliveriesStarted(deps.db, started))
    .catch((err) => deps.logger.warn({ err: (err as Error).message }, 'webhook delivery start failed; the dispatcher starts it'));
}
