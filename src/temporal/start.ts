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

/** Every workflow starts here, so every one carries the search attributes operators filter by. */
export function startWorkflow(client: Client, s: StartSpec): Promise<WorkflowHandle> {
  return client.workflow.start(s.workflowType, {
    taskQueue: s.taskQueue,
    workflowId: s.workflowId,
    args: s.args,
    ...(s.joinExisting ? { workflowIdConflictPolicy: 'USE_EXISTING' as const } : {}),
    typedSearchAttributes: [
      { key: SA_PROJECT, value: s.projectId },
      { key: SA_OPERATION, value: s.kind },
      ...(s.branchId ? [{ key: SA_BRANCH, value: s.branchId }] : []),
    ],
  });
}
