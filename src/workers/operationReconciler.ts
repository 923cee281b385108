import type { Logger } from 'pino';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Db } from '../db';
import { closeOperation, staleRunningOperations } from '../db/queries/operations';

/**
 * Operations always reach a final status. An operations row is written before its workflow
 * starts (so a 202's Location always resolves) and closed by the workflow's last step; a crash
 * between the insert and the start, or a run that ended without its last step (terminated, timed
 * out), would leave the row `running` forever. This reconciler, run by the worker role at boot and
 * on an interval, closes such rows by asking Temporal about the run each row names.
 */

/** A row still `running`, as far as the decision needs it. */
export interface RunningOperation {
  id: string;
  workflowId: string;
  /** Set by whoever started the run (the API, a sweep) right after the start; null if that never happened. */
  runId: string | null;
  createdAt: Date;
}

/** What Temporal says about the execution the row refers to. */
export type ExecutionState =
  | { found: false }
  | {
      found: true;
      /** Temporal's status name: RUNNING, COMPLETED, FAILED, TERMINATED, TIMED_OUT, CANCELLED, CONTINUED_AS_NEW… */
      status: string;
      runId: string;
      startTime: Date;
    };

export type Decision = { action: 'keep' } | { action: 'close'; status: 'succeeded' | 'failed'; message: string };

/**
 * How long a row without a run id is left alone: the API inserts the row, then starts the workflow
 * (bounded by a 5 s deadline) and records the run.
 */
export const NO_RUN_GRACE_MS = 15_000;

/** Slack between the catalog's clock (created_at) and Temporal's (start time) on one machine. */
const CLOCK_SLACK_MS = 2_000;

/**
 * The decision, pure. `execution` is the run named by the row's run id when it has one, else the
 * latest run of its workflow id.
 */
export function decideOperation(op: RunningOperation, execution: ExecutionState, now: Date): Decision {
  if (op.runId) {
    if (!execution.found) return { action: 'close', status: 'failed', message: 'its workflow run no longer exists in Temporal' };
    if (execution.status === 'RUNNING' || execution.status === 'CONTINUED_AS_NEW') return { action: 'keep' };
    // Every operation workflow records its outcome before it completes; a completed run whose row
    // is still running recorded nothing to contradict.
    if (execution.status === 'COMPLETED') return { action: 'close', status: 'succeeded', message: 'its workflow completed' };
    return { action: 'close', status: 'failed', message: `its workflow ended (${execution.status.toLowerCase()}) without recording the outcome` };
  }
  if (now.getTime() - op.createdAt.getTime() < NO_RUN_GRACE_MS) return { action: 'keep' };
  // A running execution started after the row was written is this operation's (it records its
  // outcome when it ends); one started before belongs to another operation on the resource.
  if (execution.found && execution.status === 'RUNNING' && execution.startTime.getTime() >= op.createdAt.getTime() - CLOCK_SLACK_MS) {
    return { action: 'keep' };
  }
  // A closed run that was this operation's would have recorded its outcome on the row (its last
  // step); the row being still running, none was, or it was cut off: either way, failed.
  return { action: 'close', status: 'failed', message: 'its workflow never started (the platform was interrupted before the start); retry the operation' };
}

async function executionOf(temporal: Client, op: RunningOperation): Promise<ExecutionState> {
  try {
    const d = await temporal.workflow.getHandle(op.workflowId, op.runId ?? undefined).describe();
    return { found: true, status: d.status.name, runId: d.runId, startTime: d.startTime };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { found: false };
    throw err; // Temporal unreachable: decide nothing now.
  }
}

/** One pass: every running operation old enough, decided and closed where it must be. Returns the closed ones. */
export async function reconcileOperations(db: Db, temporal: Client, logger?: Logger): Promise<{ id: string; status: string; message: string }[]> {
  const closed: { id: string; status: string; message: string }[] = [];
  // Rows with a run id are decided at any age; those without get their grace in decideOperation.
  const rows = await staleRunningOperations(db, 0);
  const now = new Date();
  for (const r of rows) {
    const op: RunningOperation = { id: r.id, workflowId: r.workflow_id, runId: r.run_id, createdAt: new Date(r.created_at as unknown as string) };
    if (!op.runId && now.getTime() - op.createdAt.getTime() < NO_RUN_GRACE_MS) continue;
    const decision = decideOperation(op, await executionOf(temporal, op), now);
    if (decision.action === 'keep') continue;
    await closeOperation(db, op.id, decision.status, decision.status === 'failed' ? { message: decision.message } : undefined);
    logger?.warn({ operation: op.id, workflowId: op.workflowId, runId: op.runId, status: decision.status }, `operation closed by the reconciler: ${decision.message}`);
    closed.push({ id: op.id, status: decision.status, message: decision.message });
  }
  return closed;
}

/** At once, then every `everyMs`, until stopped; a failed pass (Temporal down) is logged and retried next time. */
export function superviseOperations(o: { db: Db; temporal: Client; logger: Logger; everyMs?: number }): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const pass = async () => {
    try {
      await reconcileOperations(o.db, o.temporal, o.logger);
    } catch (err) {
      o.logger.warn({ err: (err as Error).message }, 'operation reconcile pass failed; next pass retries');
    }
    if (!stopped) timer = setTimeout(() => void pass(), o.everyMs ?? 10_000).unref();
  };
  void pass();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
