import { isCancellation, log } from '@temporalio/workflow';
import { catalog, host, Saga } from './common';
import type { BranchRecordsInput } from '../activities/catalog';
import type { SeedResult } from '../engine/seeds';

export interface TakeBaseBackupInput {
  operationId: string;
  projectId: string;
  branchId: string;
  baseId: string;
  backupId: string;
  hostId: string;
}

/**
 * A base backup of the branch's current history, and the scheduled backup users see for it.
 * The base is removed again when recording it fails, so nothing is left the catalog does not know.
 */
export async function takeBaseBackup(input: TakeBaseBackupInput): Promise<{ baseId: string; lsn: string; historyId: string }> {
  const saga = new Saga(['take_base', 'record'], input.operationId);
  const h = host(input.hostId);
  try {
    const { endpoint } = await catalog.restoreSources(input.branchId);
    const base = await saga.runGuarded('take_base', () => h.takeBase({ branchId: input.branchId, baseId: input.baseId, endpoint }), async () => {
      const current = await h.currentHistory(input.branchId);
      await h.removeBase({ branchId: input.branchId, historyId: current, baseId: input.baseId });
    });
    await saga.run('record', () => catalog.recordBase({ base, hostId: input.hostId, projectId: input.projectId, backupId: input.backupId }));
    return await saga.succeed({ baseId: base.baseId, lsn: base.endLsn, historyId: base.historyId });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface CreateBackupInput {
  operationId: string;
  projectId: string;
  branchId: string;
  backupId: string;
  /** Used when the history has no base yet: one is taken first, so the restore point is restorable. */
  baseId: string;
  name: string;
  hostId: string;
}

export interface BackupResult {
  backupId: string;
  lsn: string;
  historyId: string;
}

/**
 * A named restore point at the branch's current LSN: the archive is made to reach it (restore
 * point record, segment switch, archived), so a restore to it can replay every transaction
 * committed before it. A history without a base gets one first.
 */
export async function createBackup(input: CreateBackupInput): Promise<BackupResult> {
  const saga = new Saga(['base', 'restore_point', 'record'], input.operationId);
  const h = host(input.hostId);
  try {
    const sources = await catalog.restoreSources(input.branchId);
    const current = await h.currentHistory(input.branchId);
    if (!sources.bases.some((b) => b.historyId === current)) {
      await saga.run('base', async () => {
        const base = await h.takeBase({ branchId: input.branchId, baseId: input.baseId, endpoint: sources.endpoint });
        await catalog.recordBase({ base, hostId: input.hostId, projectId: input.projectId, backupId: `${input.backupId}-base` });
      });
    }
    const end = await saga.run('restore_point', () => h.historyEnd({ branchId: input.branchId, endpoint: sources.endpoint }));
    await saga.run('record', () =>
      catalog.recordNamedBackup({ backupId: input.backupId, projectId: input.projectId, branchId: input.branchId, historyId: end.historyId, name: input.name, lsn: end.endLsn, timeline: end.timeline }),
    );
    return await saga.succeed({ backupId: input.backupId, lsn: end.endLsn, historyId: end.historyId });
  } catch (err) {
    return saga.fail(err);
  }
}

/** Where a restore goes back to: an LSN of a history (a backup's, or the current one) or a moment. */
export interface RestoreTargetInput {
  lsn?: string;
  historyId?: string;
  timestamp?: string;
}

export interface RestoreBranchInput extends BranchRecordsInput {
  operationId: string;
  /** The branch whose history is replayed (the new branch's parent). */
  target: RestoreTargetInput;
  /** Oldest moment a timestamp may name (now minus the retention window), ISO. */
  windowStart: string;
}

export interface RestoreResult {
  branchId: string;
  endpointId: string;
  port: number;
  driver: string;
  /** The exact LSN replayed to (exclusive). */
  lsn: string;
  /** Commit time of the last transaction the branch holds, when the archive shows one. */
  lastCommitAt: string | null;
  seeds: SeedResult[];
}

/**
 * A new branch (and compute) holding the parent exactly as of a point of its history: a base
 * copied, its WAL replayed to the target, promoted. Seeds do not run on it. Undone entirely when
 * a step fails.
 */
export async function restoreBranch(input: RestoreBranchInput): Promise<RestoreResult> {
  const saga = new Saga(['catalog', 'resolve_target', 'restore_and_start', 'finalize'], input.operationId);
  const h = host(input.hostId);
  try {
    const { computeCu } = await saga.runGuarded('catalog', () => catalog.createBranchRecords(input), () => catalog.purgeBranch(input.branchId));
    const sources = await catalog.restoreSources(input.parentBranchId);
    const target = await saga.run('resolve_target', () =>
      host(sources.hostId).resolveRestoreTarget({
        sourceBranchId: input.parentBranchId,
        endpoint: sources.endpoint,
        currentHistoryId: sources.currentHistoryId,
        histories: sources.histories,
        bases: sources.bases,
        target: input.target,
        windowStart: input.windowStart,
      }),
    );
    const { port, driver, historyId, limitsEnforced } = await saga.runGuarded(
      'restore_and_start',
      () =>
        h.provisionRestoredCompute({
          endpointId: input.endpointId,
          childBranchId: input.branchId,
          computeCu,
          projectId: input.projectId,
          sourceBranchId: input.parentBranchId,
          historyId: target.historyId,
          baseId: target.baseId,
          targetLsn: target.lsn,
        }),
      async () => {
        await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
        await h.removeEndpointFiles(input.endpointId);
        await h.removeBranchData(input.branchId);
      },
    );
    await saga.run('finalize', () =>
      catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn: target.lsn, limitsEnforced, historyId, parentCommitAt: target.lastCommitAt }),
    );
    return await saga.succeed<RestoreResult>({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn: target.lsn, lastCommitAt: target.lastCommitAt, seeds: [] });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface RestoreInPlaceInput {
  operationId: string;
  projectId: string;
  branchId: string;
  endpointId: string;
  hostId: string;
  target: RestoreTargetInput;
  windowStart: string;
  /** Keep the state before the restore as a branch of this name (a new branch and endpoint). */
  preserve?: { name: string; branchId: string; endpointId: string; parentBranchId: string | null };
}

export interface RestoreInPlaceResult extends RestoreResult {
  preservedBranchId: string | null;
}

/**
 * "Undo my mistake": the branch goes back to a point of its own history, keeping its endpoint
 * id, port and connection string. The data before the restore stays aside until the restored
 * compute serves, then becomes the preserved branch or is dropped; a failure puts it back.
 */
export async function restoreBranchInPlace(input: RestoreInPlaceInput): Promise<RestoreInPlaceResult> {
  const saga = new Saga(['mark_restoring', 'resolve_target', 'stop_compute', 'set_aside', 'restore', 'start_compute', 'preserve', 'finalize', 'cleanup'], input.operationId);
  const h = host(input.hostId);
  const ep = { endpointId: input.endpointId, branchId: input.branchId };
  try {
    const { spec } = await catalog.endpointSpec(input.endpointId);
    await saga.runGuarded('mark_restoring', () => catalog.setBranchStatus({ branchId: input.branchId, status: 'resetting' }), () =>
      catalog.setBranchStatus({ branchId: input.branchId, status: 'ready' }),
    );
    // Replicas are standbys of the current data: they could not follow a new history.
    await saga.run('mark_restoring', () => catalog.refuseIfReplicas(input.branchId));
    // Resolved while the compute still runs: the archive is made to reach the present first.
    const sources = await catalog.restoreSources(input.branchId);
    const target = await saga.run('resolve_target', () =>
      h.resolveRestoreTarget({
        sourceBranchId: input.branchId,
        endpoint: sources.endpoint,
        currentHistoryId: sources.currentHistoryId,
        histories: sources.histories,
        bases: sources.bases,
        target: input.target,
        windowStart: input.windowStart,
      }),
    );
    await saga.runGuarded('stop_compute', () => h.stopEndpoint(ep), () => h.startEndpoint(spec));
    await saga.runGuarded('set_aside', () => h.setBranchDataAside(input.branchId), () => h.restoreBranchDataAside(input.branchId));
    const { driver, historyId } = await saga.runGuarded(
      'restore',
      () =>
        h.restoreBranchDataInPlace({ sourceBranchId: input.branchId, historyId: target.historyId, baseId: target.baseId, childBranchId: input.branchId, targetLsn: target.lsn }),
      () => h.removeForkedData(input.branchId),
    );
    const { port, limitsEnforced } = await saga.runGuarded('start_compute', () => h.startEndpoint(spec), () => h.stopEndpoint(ep));
    let preservedBranchId: string | null = null;
    if (input.preserve) {
      const p = input.preserve;
      await saga.runGuarded(
        'preserve',
        async () => {
          await catalog.createPreservedBranchRecords({ projectId: input.projectId, fromBranchId: input.branchId, branchId: p.branchId, endpointId: p.endpointId, name: p.name, parentBranchId: p.parentBranchId, hostId: input.hostId });
          await catalog.recordEndpointPort({ endpointId: p.endpointId, port: await h.reservePort(p.endpointId) });
          await h.adoptBranchDataAside({ fromBranchId: input.branchId, toBranchId: p.branchId });
        },
        async () => {
          await h.returnBranchDataAside({ fromBranchId: input.branchId, toBranchId: p.branchId });
          await h.removeEndpointFiles(p.endpointId);
          await catalog.purgeBranch(p.branchId);
        },
      );
      preservedBranchId = p.branchId;
    }
    await saga.run('finalize', () =>
      catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn: target.lsn, limitsEnforced, historyId, keepParentLsn: true }),
    );
    if (!input.preserve) {
      // Past finalize the restore is done: a failure to drop the old data must not undo it.
      await saga.run('cleanup', () =>
        h.dropBranchDataAside(input.branchId).catch((err) => {
          if (isCancellation(err)) throw err;
          log.warn('could not drop the data set aside by the restore; the next reset or restore drops it', { branchId: input.branchId, error: String(err) });
        }),
      );
    }
    return await saga.succeed<RestoreInPlaceResult>({
      branchId: input.branchId,
      endpointId: input.endpointId,
      port,
      driver,
      lsn: target.lsn,
      lastCommitAt: target.lastCommitAt,
      seeds: [],
      preservedBranchId,
    });
  } catch (err) {
    return saga.fail(err);
  }
}
