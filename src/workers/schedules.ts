import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Logger } from 'pino';

export interface ScheduleSpec {
  id: string;
  workflowType: string;
  everySeconds: number;
}

/** The periodic work of the control plane, visible and pausable in the Temporal UI. */
export function lampionSchedules(prefix: string, intervals: { autoSuspend: number; ttl: number; autoscale: number }): ScheduleSpec[] {
  return [
    { id: `${prefix}-auto-suspend`, workflowType: 'autoSuspendSweep', everySeconds: intervals.autoSuspend },
    { id: `${prefix}-branch-ttl`, workflowType: 'expireBranches', everySeconds: intervals.ttl },
    { id: `${prefix}-autoscale`, workflowType: 'autoscaleSweep', everySeconds: intervals.autoscale },
  ];
}

/** Creates each schedule, or brings an existing one to the configured interval. Idempotent. */
export async function ensureSchedules(client: Client, taskQueue: string, specs: ScheduleSpec[], logger: Logger): Promise<void> {
  for (const s of specs) {
    const options = {
      scheduleId: s.id,
      spec: { intervals: [{ every: s.everySeconds * 1000 }] },
      action: { type: 'startWorkflow' as const, workflowType: s.workflowType, taskQueue, workflowExecutionTimeout: 10 * 60_000 },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 60_000 },
    };
    try {
      await client.schedule.create(options);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(s.id).update((prev) => ({ ...prev, spec: options.spec, action: options.action, policies: options.policies }));
    }
    logger.debug({ schedule: s.id, every: s.everySeconds }, 'schedule ready');
  }
}

export async function deleteSchedules(client: Client, specs: ScheduleSpec[]): Promise<void> {
  for (const s of specs) await client.schedule.getHandle(s.id).delete().catch(() => undefined);
}
