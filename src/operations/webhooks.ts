import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { DeliverWebhookInput } from '../workflows/webhooks';

/** One workflow per delivery (an event to one webhook): a second start of it is a no-op. */
export const deliveryWorkflowId = (deliveryId: string) => `webhook-delivery/${deliveryId}`;

export interface DeliveryStarter {
  temporal: Client;
  taskQueue: string;
  retry: DeliverWebhookInput['retry'];
  timeoutMs: number;
}

/** Starts the deliveries' workflows; one already started (by another instance) counts as started. */
export async function startDeliveries(s: DeliveryStarter, ids: string[]): Promise<string[]> {
  const started: string[] = [];
  for (const deliveryId of ids) {
    try {
      await s.temporal.workflow.start('deliverWebhook', {
        taskQueue: s.taskQueue,
        workflowId: deliveryWorkflowId(deliveryId),
        args: [{ deliveryId, retry: s.retry, timeoutMs: s.timeoutMs } satisfies DeliverWebhookInput],
      });
      started.push(deliveryId);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) started.push(deliveryId);
      else throw err;
    }
  }
  return started;
}
