import type { Workflow } from '@temporalio/common';

/**
 * One operation the platform runs as a workflow: the function, the id that makes one such
 * operation per resource run at a time, the kind operators filter by (LampionOperation), and
 * where it is tagged. Pure data, importable by the API, the proxy and workflows alike.
 */
export interface OperationDef<I, R> {
  /** e.g. branch.reset; the LampionOperation search attribute and operations.kind. */
  kind: string;
  workflow: (input: I) => Promise<R>;
  workflowId: (input: I) => string;
  projectId: (input: I) => string;
  branchId?: (input: I) => string | undefined;
  /**
   * Operations this one waits behind (within the API's wait) instead of answering 409 when they
   * hold its workflow id: a suspend right after a wake-on-connect meets the wake still recording.
   */
  queueBehind?: readonly OperationDef<any, any>[];
  /**
   * What the operation is about, stored on its row for its users to read (GET of an import shows
   * it before the branch row exists and after it is gone). Never a secret: the row is in the catalog.
   */
  detail?: (input: I) => Record<string, unknown>;
}

export type InputOf<D> = D extends OperationDef<infer I, any> ? I : never;
export type ResultOf<D> = D extends OperationDef<any, infer R> ? R : never;

export function defineOperation<I, R>(def: OperationDef<I, R>): OperationDef<I, R> {
  return def;
}

/** The workflow type name Temporal records, which is the function's name. */
export function workflowType(def: OperationDef<any, any>): string {
  return (def.workflow as Workflow).name;
}

/** Workflow ids: a resource and the family of operations that must not overlap on it. */
export const workflowIds = {
  projectCreate: (projectId: string) => `project-create/${projectId}`,
  projectDelete: (projectId: string) => `project-delete/${projectId}`,
  /** Create, reset, delete and expiry of one branch share it: one at a time. */
  branch: (branchId: string) => `branch/${branchId}`,
  /** Suspend, resume and resize of one endpoint share it. */
  endpointState: (endpointId: string) => `endpoint-state/${endpointId}`,
  /** Merges into one parent branch: one at a time (each reads the parent, then changes it). */
  merge: (parentBranchId: string) => `branch-merge/${parentBranchId}`,
  /** A query replay onto an endpoint: one id per request (it only reads). */
  replay: (targetEndpointId: string, operationId: string) => `replay/${targetEndpointId}/${operationId}`,
  /** Masking of one branch: enable, remake and disable in turn. */
  anonymization: (branchId: string) => `anonymization/${branchId}`,
  /** Named restore points and base backups of one branch: one at a time, beside its other operations. */
  branchBackup: (branchId: string) => `branch-backup/${branchId}`,
  /** A check of an import's source: a read, one id per request. */
  importValidate: (projectId: string, checkId: string) => `import-validate/${projectId}/${checkId}`,
  /** A read of a compute's live metrics: one id per request. */
  endpointMetricsRead: (endpointId: string, readId: string) => `endpoint-metrics/${endpointId}/${readId}`,
  /** A read of a compute's log: one id per request. */
  endpointLogRead: (endpointId: string, readId: string) => `endpoint-logs/${endpointId}/${readId}`,
  /** An extension created or dropped by the platform in one database of an endpoint. */
  extension: (endpointId: string, database: string, name: string) => `extension/${endpointId}/${encodeURIComponent(database)}/${encodeURIComponent(name)}`,
} as const;
