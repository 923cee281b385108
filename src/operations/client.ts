import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { operationSearchAttributes } from '../temporal/searchAttributes';
import { OperationDef, workflowType } from './define';

export interface StartOptions {
  taskQueue: string;
  /** Join a running workflow with the same id instead of failing (wake-on-connect). */
  joinExisting?: boolean;
  /** Read by the workflow (deterministically): e.g. the host activity timeouts of this deployment. */
  memo?: Record<string, unknown>;
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

/**
 * The one way the API and the proxy start an operation: the compiler checks the input against
 * the workflow's, and every run carries the search attributes operators filter by.
 */
export async function startOperation<I, R>(
  client: Client,
  def: OperationDef<I, R>,
  input: I,
  o: StartOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<(i: I) => Promise<R>>> {
  const down = availability.get(client)?.();
  if (down) throw new TemporalUnavailableError(down);
  return client.withDeadline(Date.now() + START_DEADLINE_MS, () => client.workflow.start(def.workflow, {
    taskQueue: o.taskQueue,
    workflowId: def.workflowId(input),
    args: [input] as [I],
    ...(o.joinExisting ? { workflowIdConflictPolicy: 'USE_EXISTING' as const } : {}),
    ...(o.memo ? { memo: o.memo } : {}),
    typedSearchAttributes: operationSearchAttributes({ kind: def.kind, projectId: def.projectId(input), branchId: def.branchId?.(input) }),
  }));
}

/** Whether the workflow now holding `workflowId` is one of the operations `def` queues behind. */
export function queuesBehind(def: OperationDef<any, any>, runningType: string): boolean {
  return (def.queueBehind ?? []).some((d) => workflowType(d) === runningType);
}
