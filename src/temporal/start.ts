import type { Client, WorkflowHandle } from '@temporalio/client';
import { SA_BRANCH, SA_OPERATION, SA_PROJECT } from './searchAttributes';

export interface StartSpec {
  taskQueue: string;
  workflowType: string;
  workflowId: string;
  args: unknown[];
  projectId: string;
  branchId?: string;
  /** e.g. project.create; the LampionOperation search attribute. */
  kind: string;
  /** Join a running workflow with the same id instead of failing (wake-on-connect). */
  joinExisting?: boolean;
}

/**
 * A start answers in milliseconds when Temporal is up; without a deadline the client retries an
 * unreachable server for about 20 s. Past this, it fails with DEADLINE_EXCEEDED (the API's 503).
 */
export const START_DEADLINE_MS = 5000;

/** A start refused at once because this process knows its Temporal is down (the API's 503). */
export class TemporalUnavailableError extends Error {
  readonly name = 'TemporalUnavailableError';
}

const availability = new WeakMap<Client, () => string | undefined>();

/**
 * For a Temporal this process supervises (the embedded server): `down()` names why it is down
 * (e.g. restarting), or is undefined while it is up. Starts then fail at once instead of waiting
 * out the deadline.
 */
export function setAvailability(client: Client, down: () => string | undefined): void {
  availability.set(client, down);
}

/** Every workflow starts here, so every one carries the search attributes operators filter by. */
export async function startWorkflow(client: Client, s: StartSpec): Promise<WorkflowHandle> {
  const down = availability.get(client)?.();
  if (down) throw new TemporalUnavailableError(down);
  return client.withDeadline(Date.now() + START_DEADLINE_MS, () => client.workflow.start(s.workflowType, {
    taskQueue: s.taskQueue,
    workflowId: s.workflowId,
    args: s.args,
    ...(s.joinExisting ? { workflowIdConflictPolicy: 'USE_EXISTING' as const } : {}),
    typedSearchAttributes: [
      { key: SA_PROJECT, value: s.projectId },
      { key: SA_OPERATION, value: s.kind },
      ...(s.branchId ? [{ key: SA_BRANCH, value: s.branchId }] : []),
    ],
  }));
}
