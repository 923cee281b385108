import { catalog, host, Saga } from './common';
import { failure } from '../operations/failures';
import type { SchemaMergePlan } from '../domain/schemaMerge';

export interface MergeBranchInput {
  operationId: string;
  projectId: string;
  branchId: string;
  parentBranchId: string;
  hostId: string;
  branchEndpointId: string;
  parentEndpointId: string;
  database: string;
  dryRun: boolean;
  allowDestructive: boolean;
  /** Oldest moment the retention window allows (ISO); the fork point is kept past it. */
  windowStart: string;
}

export interface MergeBranchResult extends SchemaMergePlan {
  dryRun: boolean;
  /** Statements run on the parent (none for a dry run). */
  applied: string[];
  /** Destructive statements left out because allow_destructive was not given. */
  withheld: string[];
}

/**
 * The branch's schema changes applied to its parent, DDL only. The parent's schema at the fork
 * point is read from the parent's own history (a base and its WAL replayed to the branch's
 * parent_lsn, in a scratch compute no route can reach); the diff engine compares it with both
 * sides, so the merge applies what the branch changed, keeps what the parent changed, and stops
 * at objects both changed. The DDL runs on the parent as its user role, in one transaction.
 */
export async function mergeBranch(input: MergeBranchInput): Promise<MergeBranchResult> {
  const saga = new Saga(['resolve_fork_point', 'restore_fork_point', 'diff', 'apply'], input.operationId);
  const h = host(input.hostId);
  // The scratch compute's ids: derived from the operation, so a retried step finds its own.
  const token = input.operationId.replace(/^op-/, '');
  const scratch = { endpointId: `ep-mb${token}`, branchId: `br-mb${token}` };
  const removeScratch = async () => {
    await h.stopEndpoint(scratch);
    await h.removeEndpointFiles(scratch.endpointId);
    await h.removeBranchData(scratch.branchId);
  };
  try {
    const parent = await catalog.endpointSpec(input.parentEndpointId);
    const branch = await catalog.endpointSpec(input.branchEndpointId);
    const forkPoint = await catalog.forkPoint(input.branchId);
    const sources = await catalog.restoreSources(input.parentBranchId);
    const target = await saga.run('resolve_fork_point', () =>
      h.resolveRestoreTarget({
        sourceBranchId: input.parentBranchId,
        endpoint: sources.endpoint,
        currentHistoryId: sources.currentHistoryId,
        histories: sources.histories,
        bases: sources.bases,
        target: { lsn: forkPoint.lsn, ...(forkPoint.historyId ? { historyId: forkPoint.historyId } : {}) },
        windowStart: input.windowStart,
      }),
    );
    const restored = await saga.runGuarded(
      'restore_fork_point',
      () =>
        h.provisionRestoredCompute({
          endpointId: scratch.endpointId,
          childBranchId: scratch.branchId,
          computeCu: parent.spec.computeCu ?? 0.25,
          sourceBranchId: input.parentBranchId,
          historyId: target.historyId,
          baseId: target.baseId,
          targetLsn: target.lsn,
        }),
      removeScratch,
    );
    const plan = await saga.run('diff', () =>
      h.planSchemaMerge({
        database: input.database,
        forkPoint: { endpointId: scratch.endpointId, port: restored.port },
        parent: { endpointId: parent.spec.endpointId, port: parent.spec.port },
        branch: { endpointId: branch.spec.endpointId, port: branch.spec.port },
      }),
    );
    // The scratch compute has served its purpose: it goes now, whatever follows.
    await removeScratch();
    if (plan.conflicts.length) {
      throw failure(
        'MergeConflict',
        `the parent changed ${plan.conflicts.map((c) => c.object).join(', ')} since the branch was made, and so did the branch; nothing was applied`,
        { conflicts: plan.conflicts },
      );
    }
    const withheld = input.allowDestructive ? [] : plan.statements.filter((s) => s.destructive).map((s) => s.sql);
    const toApply = plan.statements.filter((s) => input.allowDestructive || !s.destructive).map((s) => s.sql);
    if (input.dryRun || toApply.length === 0) return await saga.succeed<MergeBranchResult>({ ...plan, dryRun: input.dryRun, applied: [], withheld });
    await saga.run('apply', () =>
      h.applySchemaMerge({ spec: parent.spec, passwordSealed: parent.passwordSealed, database: input.database, statements: toApply, branch: { endpointId: branch.spec.endpointId, port: branch.spec.port } }),
    );
    return await saga.succeed<MergeBranchResult>({ ...plan, dryRun: false, applied: toApply, withheld });
  } catch (err) {
    return saga.fail(err);
  }
}
