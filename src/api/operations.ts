import type Koa from 'koa';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { newId } from '../domain/ids';
import type { OperationRow } from '../db';
import { startWorkflow } from '../temporal/start';
import { progressQuery } from '../workflows/queries';
import { ApiError, conflict } from './errors';
import type { ApiDeps } from './deps';
import type { AuthContext } from './auth';

export interface OperationRequest {
  auth: AuthContext;
  projectId: string;
  branchId?: string;
  /** e.g. project.create; also the LampionOperation search attribute. */
  kind: string;
  workflowType: string;
  /** Names the resource and the operation, so a duplicate request collides (409). */
  workflowId: string;
  args: (operationId: string) => unknown[];
  /**
   * Workflow types this request waits behind (within the API's wait) instead of answering 409:
   * a suspend right after a wake-on-connect meets the wake's workflow still recording.
   */
  queueBehind?: readonly string[];
}

export type OperationOutcome<T> = { done: true; operationId: string; result: T } | { done: false; operationId: string };

/** Failure types that are the caller's fault; anything else is ours (500). */
const CLIENT_FAILURES: Record<string, number> = { Invalid: 422, Conflict: 409, NotFound: 404, SeedFailed: 422 };

function rootFailure(err: unknown): { type?: string; message: string; details?: unknown } {
  let e: unknown = err instanceof WorkflowFailedError ? err.cause : err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) return { type: e.type ?? undefined, message: e.message, details: e.details?.[0] };
  return { message: e instanceof Error ? e.message : String(e) };
}

/** Whether the workflow holding req.workflowId was one to queue behind, and has ended in time. */
async function waitedBehind(deps: ApiDeps, req: OperationRequest): Promise<boolean> {
  if (!req.queueBehind?.length) return false;
  const holder = deps.temporal.workflow.getHandle(req.workflowId);
  const { type } = await holder.describe();
  if (!req.queueBehind.includes(type)) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), deps.config.apiWaitMs)));
  try {
    return (await Promise.race([holder.result().catch(() => 'ended'), timeout])) !== 'timeout';
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts the workflow behind a long operation and waits a bounded time for it. Past the bound,
 * the caller answers 202 with the operation id; GET …/operations/{id} resolves it later.
 */
export async function runOperation<T>(deps: ApiDeps, req: OperationRequest): Promise<OperationOutcome<T>> {
  const operationId = newId('operation');
  await deps.db
    .insertInto('operations')
    .values({
      id: operationId,
      org_id: req.auth.orgId,
      project_id: req.projectId,
      kind: req.kind,
      workflow_id: req.workflowId,
      status: 'running',
      step: 'queued',
    })
    .execute();
  const start = () =>
    startWorkflow(deps.temporal, {
      taskQueue: deps.config.controlTaskQueue,
      workflowType: req.workflowType,
      workflowId: req.workflowId,
      args: req.args(operationId),
      projectId: req.projectId,
      branchId: req.branchId,
      kind: req.kind,
    });
  let handle;
  try {
    try {
      handle = await start();
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError) || !(await waitedBehind(deps, req))) throw err;
      handle = await start();
    }
  } catch (err) {
    await deps.db.deleteFrom('operations').where('id', '=', operationId).execute();
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw conflict(`another operation is already running on this resource (${req.workflowId})`);
    }
    throw err;
  }
  const result = handle.result();
  result.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), deps.config.apiWaitMs);
  });
  try {
    const outcome = await Promise.race([result, timeout]);
    if (outcome === 'timeout') return { done: false, operationId };
    return { done: true, operationId, result: outcome as T };
  } catch (err) {
    const root = rootFailure(err);
    const status = (root.type && CLIENT_FAILURES[root.type]) || 500;
    throw new ApiError(status, status === 500 ? 'operation_failed' : 'operation_rejected', root.message, {
      operation_id: operationId,
      failure_type: root.type,
      ...(root.details === undefined ? {} : { failure: root.details }),
    });
  } finally {
    clearTimeout(timer);
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

export function operationView(op: OperationRow, progress?: { step: string; steps: string[] }) {
  return {
    id: op.id,
    project_id: op.project_id,
    kind: op.kind,
    status: op.status,
    step: progress?.step ?? op.step,
    steps: progress?.steps,
    error: op.error ?? null,
    result: op.result ?? null,
    workflow_id: op.workflow_id,
    created_at: new Date(op.created_at).toISOString(),
    updated_at: new Date(op.updated_at).toISOString(),
  };
}

/** Live step of a running operation, from the workflow itself. */
export async function liveProgress(deps: ApiDeps, op: OperationRow) {
  if (op.status !== 'running') return undefined;
  try {
    return await deps.temporal.workflow.getHandle(op.workflow_id).query(progressQuery);
  } catch {
    return undefined;
  }
}
