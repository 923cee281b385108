import {
  proxyActivities,
  proxyLocalActivities,
  CancellationScope,
  setHandler,
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  log,
} from '@temporalio/workflow';
import type { CatalogActivities } from '../activities/catalog';
import type { HostActivities } from '../activities/host';
import { hostTaskQueue } from '../domain/queues';
import { progressQuery } from './queries';


const NON_RETRYABLE = ['NotFound', 'NoPort', 'NoFreePort', 'InjectedFault', 'Invalid', 'Conflict', 'SeedFailed'];

/**
 * Catalog work is short database I/O on the control worker itself: local activities run inside
 * the workflow task, without a round trip through the server per step.
 */
export const catalog = proxyLocalActivities<CatalogActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Engine activities go to the worker of the host that holds the data. */
export function host(hostId: string) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostId),
    startToCloseTimeout: '5 minutes',
    scheduleToStartTimeout: '10 minutes',
    retry: { initialInterval: '500 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** The error as an operation reports it: the failing activity's own type and message. */
export function describeFailure(err: unknown): { type?: string; message: string; details?: unknown } {
  let e: unknown = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) {
    return { type: e.type ?? undefined, message: e.message, ...(e.details?.length ? { details: e.details[0] } : {}) };
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

/**
 * A saga: run steps in order, remember how to undo each that succeeded, and on failure undo
 * them in reverse inside a non-cancellable scope, then rethrow the original error.
 */
export class Saga {
  private readonly undo: { name: string; fn: () => Promise<unknown> }[] = [];
  private current = 'starting';

  constructor(readonly steps: string[]) {
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

  /** Runs compensations, records the failed operation, rethrows: the tail of every saga's catch. */
  async fail(operationId: string | undefined, err: unknown): Promise<never> {
    const failedStep = this.current;
    await this.compensate();
    if (operationId) {
      await CancellationScope.nonCancellable(() =>
        catalog.finishOperation({ operationId, status: 'failed', step: failedStep, error: describeFailure(err) }),
      );
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
