import { startChild, workflowInfo, ParentClosePolicy, WorkflowIdReusePolicy, uuid4, log } from '@temporalio/workflow';
import type { OperationDef } from '../operations/define';
import { operationSearchAttributes } from '../temporal/searchAttributes';
import { catalog } from './common';

/**
 * How a sweep starts an operation it decided on: the operation's own workflow id (so it queues
 * against the user's operations on the resource), its own operations row, tagged with its
 * project and branch, outliving the sweep. False when another operation holds the resource;
 * the next sweep tries again.
 */
export async function startDecidedOperation<I extends { operationId?: string }>(
  def: OperationDef<I, unknown>,
  input: Omit<I, 'operationId'>,
  owner: { orgId: string },
): Promise<boolean> {
  const operationId = `op-${uuid4().replace(/-/g, '').slice(0, 12)}`;
  const full = { ...input, operationId } as I;
  const workflowId = def.workflowId(full);
  const projectId = def.projectId(full);
  await catalog.openOperation({ operationId, orgId: owner.orgId, projectId, kind: def.kind, workflowId });
  try {
    const child = await startChild(def.workflow, {
      workflowId,
      args: [full],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      typedSearchAttributes: operationSearchAttributes({ kind: def.kind, projectId, branchId: def.branchId?.(full) }),
      memo: workflowInfo().memo,
    });
    // The run its progress and final state are read from (the API does the same for its starts).
    await catalog.attachOperationRun({ operationId, runId: child.firstExecutionRunId });
    return true;
  } catch (err) {
    log.info('skipped: another operation holds the resource', { workflowId, error: String(err) });
    await catalog.finishOperation({ operationId, status: 'failed', step: 'queued', error: { message: 'another operation holds the resource; the next sweep tries again' } });
    return false;
  }
}
