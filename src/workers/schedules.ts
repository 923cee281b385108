import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import type { Logger } from 'pino';
import { autoSuspendSweep, expireBranches, autoscaleSweep, backupSweep, metricsSweep } from '../workflows/schedules';
import { operationSearchAttributes, SWEEP_OPERATION } from '../temporal/searchAttributes';
import { HOST_TIMEOUTS_MEMO, HostTimeouts } from '../domain/timeouts';

export interface ScheduleSpec {
  id: string;
  workflow: Workflow;
  everySeconds: number;
  /** The sweep's arguments (what a workflow cannot read from the environment). */
  args?: unknown[];
}

/** The periodic work of the control plane, visible and pausable in the Temporal UI. */
export function lampionSchedules(
  prefix: string,
  intervals: { autoSuspend: number; ttl: number; autoscale: number; backup: number; metrics: number },
  backups: { intervalHours: number; retentionDays: number },
): ScheduleSpec[] {
  return [
    { id: `${prefix}-backups`, workflow: backupSweep, everySeconds: intervals.backup, args: [{ intervalHours: backups.intervalHours, retentionDays: backups.retentionDays }] },
    { id: `${prefix}-auto-suspend`, workflow: autoSuspendSweep, everySeconds: intervals.autoSuspend },
    { id: `${prefix}-branch-ttl`, workflow: expireBranches, everySeconds: intervals.ttl },
    { id: `${prefix}-autoscale`, workflow: autoscaleSweep, everySeconds: intervals.autoscale },
    { id: `${prefix}-metrics`, workflow: metricsSweep, everySeconds: intervals.metrics },
  ];
}

/**
 * Creates each schedule, or brings an existing one to the configured interval. Idempotent. Sweep
 * runs are tagged LampionOperation = "sweep", which the operators' saved query leaves out; what a
 * sweep decides runs as its own operation, tagged with its project and branch.
 */
export async function ensureSchedules(client: Client, taskQueue: string, specs: ScheduleSpec[], logger: Logger, hostTimeouts: HostTimeouts): Promise<void> {
  for (const s of specs) {
    const options = {
      scheduleId: s.id,
      spec: { intervals: [{ every: s.everySeconds * 1000 }] },
      action: {
        type: 'startWorkflow' as const,
        workflowType: s.workflow,
        ...(s.args ? { args: s.args } : {}),
        taskQueue,
        workflowExecutionTimeout: 10 * 60_000,
        typedSearchAttributes: operationSearchAttributes({ kind: SWEEP_OPERATION }),
        memo: { [HOST_TIMEOUTS_MEMO]: hostTimeouts },
      },
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
