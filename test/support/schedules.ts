import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestStack } from './stack';

export async function waitFor(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

let lastTrigger = 0;

/** Triggers the schedule (as an operator would in the UI) and waits for that run to finish. */
export async function runScheduleOnce(t: TestStack, handle: any): Promise<void> {
  // Scheduled runs are named <schedule>-<time to the second>: a second trigger within the same
  // second would collide with the first run's id and be dropped.
  const wait = lastTrigger + 1100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastTrigger = Date.now();
  const before = new Set(((await handle.describe()).info.recentActions ?? []).map((a: any) => a.action.workflow.workflowId));
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  let runId: string | undefined;
  await waitFor(async () => {
    const recent = (await handle.describe()).info.recentActions ?? [];
    const fresh = recent.find((a: any) => !before.has(a.action.workflow.workflowId));
    runId = fresh?.action.workflow.workflowId;
    return Boolean(runId);
  });
  await t.stack.temporal.workflow.getHandle(runId!).result();
}
