import type Koa from 'koa';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { newId } from '../domain/ids';
import type { OperationRow } from '../db';
import { deleteOperation, insertOperation, setOperationRun } from '../db/queries/operations';
import type { OperationDef } from '../operations/define';
import { queuesBehind, startOperation, TemporalUnavailableError } from '../operations/client';
import { httpStatusOf, rootFailure } from '../operations/failures';
import { HOST_TIMEOUTS_MEMO } from '../domain/timeouts';
import { progressQuery } from '../workflows/queries';
import { ApiError, conflict } from './errors';
import type { ApiDeps } from './deps';
import type { AuthContext } from './auth';

export type OperationOutcome<T> = { done: true; operationId: string; result: T } | { done: false; operationId: string };

/** Waits up to the API's bound for a promise; 'timeout' past it. */
async function withinWait<T>(deps: ApiDeps, p: Promise<T>): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), deps.config.apiWaitMs)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the workflow holding the id is one `def` queues behind, and has ended in time. */
async function waitedBehind(deps: ApiDeps, def: OperationDef<any, any>, workflowId: string): Promise<boolean> {
  if (!def.queueBehind?.length) return false;
  const holder = deps.temporal.workflow.getHandle(workflowId);
  const { type } = await holder.describe();
  if (!queuesBehind(def, type)) return false;
  return (await withinWait(deps, holder.result().catch(() => 'ended'))) !== 'timeout';
}

/**
 * Starts an operation from the table (src/operations) and waits a bounded time for it. Past the
 * bound, the caller answers 202 with the operation id; GET …/operations/{id} resolves it later.
 * The operations row exists before the workflow starts, so a 202's Location always resolves; a
 * row whose workflow never started (a crash in between) is closed by the reconciler.
 */
export async function runOperation<I extends { operationId?: string }, R>(
  deps: ApiDeps,
  auth: AuthContext,
  def: OperationDef<I, R>,
  input: Omit<I, 'operationId'>,
): Promise<OperationOutcome<R>> {
  const operationId = newId('operation');
  const full = { ...input, operationId } as I;
  const workflowId = def.workflowId(full);
  await insertOperation(deps.db, { id: operationId, orgId: auth.orgId, projectId: def.projectId(full), kind: def.kind, workflowId });
  const start = () =>
    startOperation(deps.temporal, def, full, { taskQueue: deps.config.controlTaskQueue, memo: { [HOST_TIMEOUTS_MEMO]: deps.config.hostTimeouts } });
  let handle;
  try {
    try {
      handle = await start();
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError) || !(await waitedBehind(deps, def, workflowId))) throw err;
      handle = await start();
    }
  } catch (err) {
    // Refused for certain (the id is held, or Temporal is known down): the row goes. A start that
    // timed out may still have reached Temporal: the row stays, and either its run records the
    // outcome or the operation reconciler closes it as never started.
    if (err instanceof WorkflowExecutionAlreadyStartedError || err instanceof TemporalUnavailableError) await deleteOperation(deps.db, operationId);
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw conflict(`another operation is already running on this resource (${workflowId})`);
    throw err;
  }
  await setOperationRun(deps.db, operationId, handle.firstExecutionRunId);
  const result = handle.result();
  result.catch(() => undefined);
  try {
    const outcome = await withinWait(deps, result);
    if (outcome === 'timeout') return { done: false, operationId };
    return { done: true, operationId, result: outcome as R };
  } catch (err) {
    const root = rootFailure(err);
    const status = httpStatusOf(root.type);
    throw new ApiError(status, status === 500 ? 'operation_failed' : 'operation_rejected', root.message, {
      operation_id: operationId,
      failure_type: root.type,
      ...(root.details === undefined ? {} : { failure: root.details }),
    });
  }
}

/**
 * The answer to a long operation still running after the API's wait: 202, the operation to poll
 * in Location, and the route's own body (which always carries operation_id).
 */
export function answerAccepted(ctx: Koa.Context, projectId: string, operationId: string, body: Record<string, unknown>): void {
  ctx.status = 202;
  ctx.set('Location', `/v1/projects/${projectId}/operations/${operationId}`);
  ctx.body = { ...body, operation_id: operationId };
}

/** Live step of a running operation, from its own run (not whichever run holds the id now). */
export async function liveProgress(deps: ApiDeps, op: OperationRow) {
  if (op.status !== 'running' || !op.run_id) return undefined;
  try {
    return await deps.temporal.workflow.getHandle(op.workflow_id, op.run_id).query(progressQuery);
  } catch {
    // The run ended meanwhile (its row is about to say so) or Temporal is away: the row's step serves.
    return undefined;
  }
}
