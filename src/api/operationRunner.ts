import type Koa from 'koa';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
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

/** The run's result, cancelled when the stack stops (see ApiDeps.stopping). */
function resultOf<R>(deps: ApiDeps, handle: { result(): Promise<R> }): Promise<R> {
  const p = deps.stopping ? deps.temporal.withAbortSignal(deps.stopping, () => handle.result()) : handle.result();
  p.catch(() => undefined);
  return p;
}

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
  return (await withinWait(deps, resultOf(deps, holder).catch(() => 'ended'))) !== 'timeout';
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
  /** wait: false answers as soon as the workflow runs (an import: the client polls its progress). */
  o: { wait?: boolean } = {},
): Promise<OperationOutcome<R>> {
  const operationId = newId('operation');
  const full = { ...input, operationId } as I;
  const workflowId = def.workflowId(full);
  await insertOperation(deps.db, { id: operationId, orgId: auth.orgId, projectId: def.projectId(full), kind: def.kind, workflowId, detail: def.detail?.(full) });
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
  if (o.wait === false) return { done: false, operationId };
  const result = resultOf(deps, handle);
  try {
    const outcome = await withinWait(deps, result);
    if (outcome === 'timeout') return { done: false, operationId };
    return { done: true, operationId, result: outcome as R };
  } catch (err) {
    throw failedOperation(err, { operation_id: operationId });
  }
}

/** The API's answer to an operation that failed: the failure's declared status, else 500. */
function failedOperation(err: unknown, details: Record<string, unknown>): ApiError {
  const root = rootFailure(err);
  const status = httpStatusOf(root.type);
  return new ApiError(status, status === 500 ? 'operation_failed' : 'operation_rejected', root.message, {
    ...details,
    failure_type: root.type,
    ...(root.details === undefined ? {} : { failure: root.details }),
  });
}

/**
 * A read that must run on a host (an import's source checked from where it would be read): a
 * short workflow from the table with no operations row, awaited within the API's bound (504
 * past it). Nothing to reconcile if it never ends: it changed nothing.
 */
export async function runRead<I, R>(deps: ApiDeps, def: OperationDef<I, R>, input: I): Promise<R> {
  const handle = await startOperation(deps.temporal, def, input, { taskQueue: deps.config.controlTaskQueue, memo: { [HOST_TIMEOUTS_MEMO]: deps.config.hostTimeouts } });
  const result = resultOf(deps, handle);
  let outcome: R | 'timeout';
  try {
    outcome = await withinWait(deps, result);
  } catch (err) {
    throw failedOperation(err, { workflow_id: def.workflowId(input) });
  }
  if (outcome === 'timeout') {
    await handle.terminate('the API stopped waiting').catch(() => undefined);
    throw new ApiError(504, 'timeout', `no answer within ${Math.round(deps.config.apiWaitMs / 1000)} s; try again`);
  }
  return outcome;
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

/** What the running activity of an operation last heartbeated (an import's bytes, a fork's). */
export interface LiveActivity {
  activity: string;
  attempt: number;
  details?: Record<string, unknown>;
}

/**
 * The heartbeat details of the operation's running activity, from its own run; undefined when
 * none runs (or Temporal cannot say now).
 */
export async function liveActivity(deps: ApiDeps, op: OperationRow): Promise<LiveActivity | undefined> {
  if (op.status !== 'running' || !op.run_id) return undefined;
  try {
    const d = await deps.temporal.workflow.getHandle(op.workflow_id, op.run_id).describe();
    const pending = d.raw.pendingActivities ?? [];
    const a = pending.find((p) => p.heartbeatDetails?.payloads?.length) ?? pending[0];
    if (!a) return undefined;
    const payload = a.heartbeatDetails?.payloads?.[0];
    const details = payload ? (defaultPayloadConverter.fromPayload(payload as any) as Record<string, unknown> | undefined) : undefined;
    return { activity: a.activityType?.name ?? '', attempt: a.attempt ?? 1, ...(details ? { details } : {}) };
  } catch {
    return undefined;
  }
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
