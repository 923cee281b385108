import { proxyActivities, ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/webhooks';

export interface DeliverWebhookInput {
  deliveryId: string;
  /** Exponential backoff from initialSeconds up to maxSeconds between attempts, for `hours` in all. */
  retry: { initialSeconds: number; maxSeconds: number; hours: number };
  timeoutMs: number;
}

/**
 * One event to one webhook: POST it signed until the receiver answers 2xx or the retry window
 * closes. Temporal keeps the attempts going across worker restarts; each attempt is also a row
 * the API shows (GET /v1/orgs/webhooks/{id}/deliveries).
 */
export async function deliverWebhook(input: DeliverWebhookInput): Promise<{ status: string; attempts: number }> {
  const { sendWebhookDelivery } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: input.timeoutMs + 5000,
    scheduleToCloseTimeout: input.retry.hours * 3_600_000,
    retry: {
      initialInterval: input.retry.initialSeconds * 1000,
      backoffCoefficient: 2,
      maximumInterval: input.retry.maxSeconds * 1000,
      nonRetryableErrorTypes: ['WebhookGone'],
    },
  });
  const { finishWebhookDelivery } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  try {
    const r = await sendWebhookDelivery(input.deliveryId);
    return { status: r.status, attempts: r.attempt };
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const gone = cause instanceof ApplicationFailure && cause.type === 'WebhookGone';
    await finishWebhookDelivery({ deliveryId: input.deliveryId, status: gone ? 'cancelled' : 'failed' });
    return { status: gone ? 'cancelled' : 'failed', attempts: -1 };
  }
}
