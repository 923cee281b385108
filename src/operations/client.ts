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
 * The one way the API and the proxy start an operation: the compiler checks the input against
 * the workflow's, and every run carries the search attributes operators filter by.
 */
export function startOperation<I, R>(client: Client, def: OperationDef<I, R>, input: I, o: StartOptions): Promise<WorkflowHandleWithFirstExecutionRunId<(i: I) => Promise<R>>> {
  return client.workflow.start(def.workflow, {
    taskQueue: o.taskQueue,
    workflowId: def.workflowId(input),
    args: [input] as [I],
    ...(o.joinExisting ? { workflowIdConflictPolicy: 'USE_EXISTING' as const } : {}),
    ...(o.memo ? { memo: o.memo } : {}),
    typedSearchAttributes: operationSearchAttributes({ kind: def.kind, projectId: def.projectId(input), branchId: def.branchId?.(input) }),
  });
}

/** Whether the workflow now holding `workflowId` is one of the operations `def` queues behind. */
export function queuesBehind(def: OperationDef<any, any>, runningType: string): boolean {
  return (def.queueBehind ?? []).some((d) => workflowType(d) === runningType);
}
