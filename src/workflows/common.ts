import { proxyActivities, proxyLocalActivities, ActivityCancellationType, CancellationScope, isCancellation, setHandler, workflowInfo, log } from '@temporalio/workflow';
import type { RetryPolicy } from '@temporalio/common';
import type { CatalogActivities } from '../activities/catalog';
import type { HostActivities } from '../activities/host';
import { hostTaskQueue } from '../domain/queues';
import { NON_RETRYABLE_FAILURES, rootFailure } from '../operations/failures';
import { DEFAULT_HOST_TIMEOUTS, HostTimeouts, HOST_TIMEOUTS_MEMO } from '../domain/timeouts';
import { progressQuery } from './queries';

/**
 * Catalog work is short database I/O on the control worker itself: local activities run inside
 * the workflow task, without a round trip through the server per step.
 */
export const catalog = proxyLocalActivities<CatalogActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** Set by whoever starts the workflow (memo), so a deployment's or a test's timeouts apply. */
export function hostTimeouts(): HostTimeouts {
  const memo = workflowInfo().memo?.[HOST_TIMEOUTS_MEMO] as Partial<HostTimeouts> | undefined;
  return { ...DEFAULT_HOST_TIMEOUTS, ...memo };
}

/**
 * Engine activities go to the worker of the host that holds the data. Every host activity
 * heartbeats, so a dead worker is noticed within the heartbeat timeout instead of the
 * start-to-close; long ones (forks by copy, imports, later backups and restores) have no practical
 * start-to-close at all and are bounded by their heartbeats alone.
 */
export function host(hostId: string) {
  const t = hostTimeouts();
  const retry: RetryPolicy = { initialInterval: '500 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES };
  // A cancelled workflow waits for its host work to stop (a copy's processes killed, its dir
  // removed) before compensating: otherwise the undo would race the copy still writing.
  const common = {
    taskQueue: hostTaskQueue(hostId),
    scheduleToStartTimeout: '10 minutes' as const,
    heartbeatTimeout: t.heartbeatSeconds * 1000,
    retry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const short = proxyActivities<HostActivities>({ ...common, startToCloseTimeout: t.shortSeconds * 1000 });
  const long = proxyActivities<HostActivities>({ ...common, startToCloseTimeout: t.longSeconds * 1000 });
  const longWork = new Set<string>(['forkBranchData', 'provisionBranchCompute', 'takeBase', 'provisionRestoredCompute', 'restoreBranchDataInPlace', 'provisionReplicaCompute', 'loadSourceDump', 'replayStatement']);
  // Activity proxies are Proxies (nothing to spread): pick per name.
  return new Proxy(short, { get: (_, name: string) => (longWork.has(name) ? long : short)[name as keyof typeof short] });
}

/** The error as an operation reports it: the failing activity's own type and message. */
export const describeFailure = rootFailure;

/**
 * A saga: run steps in order, remember how to undo each that succeeded, and on failure undo
 * them in reverse inside a non-cancellable scope, then rethrow the original error.
 */
export class Saga {
  private readonly undo: { name: string; fn: () => Promise<unknown> }[] = [];
  private current = 'starting';

  constructor(
    readonly steps: string[],
    /** The operations row this run reports to; sweeps' own runs have none. */
    readonly operationId?: string,
  ) {
    setHandler(progressQuery, () => ({ step: this.current, steps: this.steps }));
  }

  get step(): string {
    return this.current;
  }

  async run<T>(name: string, fn: () => Promise<T>, compensate?: (result: T) => Promise<unknown>): Promise<T> {
    this.current = name;
    const result = await fn();
    if (compensate) this.undo.push({ name, fn: () => compensate(result) });
    return result;
  }

  /** Registers an undo before the step runs, for steps whose partial effects need cleaning too. */
  async runGuarded<T>(name: string, fn: () => Promise<T>, compensate: () => Promise<unknown>): Promise<T> {
    this.current = name;
    this.undo.push({ name, fn: compensate });
    return fn();
  }

  /** The tail of every saga that succeeded: the operation records its result. */
  async succeed<T>(result: T): Promise<T> {
    this.current = 'done';
    if (this.operationId) await catalog.finishOperation({ operationId: this.operationId, status: 'succeeded', step: 'done', result });
    return result;
  }

  /** Runs compensations, records the failed operation, rethrows: the tail of every saga's catch. */
  async fail(err: unknown): Promise<never> {
    const failedStep = this.current;
    await this.compensate();
    if (this.operationId) {
      const operationId = this.operationId;
      // A cancelled run is failed too (the operation's final status), with an error saying so.
      const error = isCancellation(err) ? { type: 'Cancelled', message: 'the operation was cancelled' } : rootFailure(err);
      await CancellationScope.nonCancellable(() => catalog.finishOperation({ operationId, status: 'failed', step: failedStep, error }));
    }
    throw err;
  }

  async compensate(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const { name, fn } of this.undo.reverse()) {
        try {
          await fn();
        } catch (err) {
          // Keep undoing the rest: a half-compensated saga is worse than a logged failure.
          log.error('compensation failed', { step: name, error: String(err) });
        }
      }
      this.undo.length = 0;
    });
  }
}
