import { ApplicationFailure } from '@temporalio/common';

/**
 * Every failure type an activity or workflow raises on purpose, declared once: whether Temporal
 * may retry it, and the HTTP status the API answers when an operation ends with it. Anything not
 * listed is ours: retried by Temporal, a 500 at the API.
 */
export const FAILURE_TYPES = {
  NotFound: { retryable: false, httpStatus: 404 },
  Conflict: { retryable: false, httpStatus: 409 },
  Invalid: { retryable: false, httpStatus: 422 },
  SeedFailed: { retryable: false, httpStatus: 422 },
  /** A restore or branch-at-a-point target outside what the history and its retention hold. */
  InvalidRestoreTarget: { retryable: false, httpStatus: 422 },
  /** The history cannot be read to that point (no recorded end, a gap in the archive). */
  HistoryUnavailable: { retryable: false, httpStatus: 409 },
  /** An import's source cannot be imported as it is (unreachable, credentials, major, extensions). */
  ImportSourceInvalid: { retryable: false, httpStatus: 422 },
  /** pg_dump of the source or its load into the new branch failed (the source's SQL, a dropped connection). */
  ImportFailed: { retryable: false, httpStatus: 422 },
  /** The database refused a platform step on the user's behalf (details.sqlstate says why). */
  ExtensionRefused: { retryable: false, httpStatus: 409 },
  /** A merge would overwrite schema changes the parent made since the fork (details.conflicts). */
  MergeConflict: { retryable: false, httpStatus: 409 },
  /** The parent refused the merge's DDL; nothing was applied (details: statement, sqlstate). */
  MergeFailed: { retryable: false, httpStatus: 409 },
  /** The organization's plan allows no more of the resource. */
  PlanLimit: { retryable: false, httpStatus: 403 },
  NoPort: { retryable: false, httpStatus: 500 },
  NoFreePort: { retryable: false, httpStatus: 503 },
  InjectedFault: { retryable: false, httpStatus: 500 },
} as const satisfies Record<string, { retryable: boolean; httpStatus: number }>;

export type FailureType = keyof typeof FAILURE_TYPES;

export const NON_RETRYABLE_FAILURES: string[] = Object.entries(FAILURE_TYPES)
  .filter(([, f]) => !f.retryable)
  .map(([t]) => t);

/** A failure to raise from an activity, typed so its name is one of the declared ones. */
export function failure(type: FailureType, message: string, details?: unknown): ApplicationFailure {
  const f = FAILURE_TYPES[type];
  return ApplicationFailure.create({ type, message, nonRetryable: !f.retryable, details: details === undefined ? undefined : [details] });
}

export interface RootFailure {
  type?: string;
  message: string;
  details?: unknown;
}

/**
 * The failure as a user should read it: the innermost ApplicationFailure under the layers
 * Temporal wraps it in (WorkflowFailedError, ChildWorkflowFailure, ActivityFailure).
 */
export function rootFailure(err: unknown): RootFailure {
  let e: unknown = err;
  while (!(e instanceof ApplicationFailure) && e instanceof Error && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) {
    return { type: e.type ?? undefined, message: e.message, ...(e.details?.length ? { details: e.details[0] } : {}) };
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

/** The HTTP status of a failed operation: the caller's fault for declared types, else 500. */
export function httpStatusOf(type: string | undefined): number {
  return (type && (FAILURE_TYPES as Record<string, { httpStatus: number }>)[type]?.httpStatus) || 500;
}
