import { ApplicationFailure, isCancellation, log } from '@temporalio/workflow';
import { catalog, host, Saga } from './common';
import { rootFailure } from '../operations/failures';
import type { BranchRecordsInput } from '../activities/catalog';
import type { SeedResult } from '../engine/seeds';
import type { EndpointSpec } from '../engine/host';

export interface CreateBranchInput extends BranchRecordsInput {
  operationId: string;
}

export interface BranchResult {
  branchId: string;
  endpointId: string;
  port: number;
  driver: string;
  lsn: string;
  seeds: SeedResult[];
}

/**
 * The project's enabled seeds on the endpoint, in order, as its user; skipped (no host round
 * trip) when there are none. The first failure stops the rest and fails the saga, naming the
 * seed, with every seed's outcome.
 */
async function runSeeds(saga: Saga, hostId: string, projectId: string, spec: EndpointSpec, passwordSealed: string, seedCount: number): Promise<SeedResult[]> {
  if (seedCount === 0) return [];
  return saga.run('seeds', async () => {
    const seeds = await catalog.enabledSeeds(projectId);
    const results: SeedResult[] = seeds.map((s) => ({ id: s.id, name: s.name, status: 'not_run', duration_ms: 0 }));
    for (const [i, s] of seeds.entries()) {
      try {
        results[i] = await host(hostId).runSeed({ spec, passwordSealed, seed: await catalog.seedScript(s.id) });
      } catch (err) {
        const root = rootFailure(err);
        if (root.type !== 'SeedFailed') throw err;
        const d = root.details as { seed_id: string; seed_name: string; error: string; result: SeedResult };
        results[i] = d.result;
        throw ApplicationFailure.create({
          type: 'SeedFailed',
          message: root.message,
          nonRetryable: true,
          details: [{ seed_id: d.seed_id, seed_name: d.seed_name, error: d.error, seeds: results }],
        });
      }
    }
    return results;
  });
}

/** Fork the parent's data, start a compute on it, run the seeds; undo everything if a step fails. */
export async function createBranch(input: CreateBranchInput): Promise<BranchResult> {
  const saga = new Saga(['catalog', 'fork_and_start', 'seeds', 'finalize'], input.operationId);
  const h = host(input.hostId);
  try {
    const { seedCount, computeCu, parentEndpoint, passwordSealed } = await saga.runGuarded('catalog', () => catalog.createBranchRecords(input), () =>
      catalog.purgeBranch(input.branchId),
    );
    const { port, driver, lsn, historyId, limitsEnforced } = await saga.runGuarded(
      'fork_and_start',
      () =>
        h.provisionBranchCompute({
          endpointId: input.endpointId,
          projectId: input.projectId,
          parentBranchId: input.parentBranchId,
          parentEndpoint,
          childBranchId: input.branchId,
          computeCu,
        }),
      async () => {
        await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
        await h.removeEndpointFiles(input.endpointId);
        await h.removeBranchData(input.branchId);
      },
    );
    const spec = { endpointId: input.endpointId, branchId: input.branchId, port, computeCu, projectId: input.projectId };
    const seeds = await runSeeds(saga, input.hostId, input.projectId, spec, passwordSealed, seedCount);
    await saga.run('finalize', () => catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, limitsEnforced, historyId }));
    return await saga.succeed<BranchResult>({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, seeds });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface ResetBranchInput {
  operationId: string;
  projectId: string;
  branchId: string;
  endpointId: string;
  parentBranchId: string;
  hostId: string;
}

/**
 * The branch becomes its parent's current state. The endpoint keeps its id and port, so users'
 * connection strings keep working. The old data stays aside until the new fork is serving.
 */
export async function resetBranch(input: ResetBranchInput): Promise<BranchResult> {
  const saga = new Saga(['mark_resetting', 'stop_compute', 'set_aside', 'fork', 'start_compute', 'seeds', 'finalize', 'cleanup'], input.operationId);
  const h = host(input.hostId);
  const ep = { endpointId: input.endpointId, branchId: input.branchId };
  try {
    const { spec, passwordSealed } = await catalog.endpointSpec(input.endpointId);
    // Guarded: a step that failed may still have done its work (an answer lost after the status
    // was written, the compute stopped or the data moved); each undo is harmless when it had not.
    await saga.runGuarded('mark_resetting', () => catalog.setBranchStatus({ branchId: input.branchId, status: 'resetting' }), () =>
      catalog.setBranchStatus({ branchId: input.branchId, status: 'ready' }),
    );
    // Replicas are standbys of the current data: they could not follow a new history.
    await saga.run('mark_resetting', () => catalog.refuseIfReplicas(input.branchId));
    await saga.runGuarded('stop_compute', () => h.stopEndpoint(ep), () => h.startEndpoint(spec));
    await saga.runGuarded('set_aside', () => h.setBranchDataAside(input.branchId), () => h.restoreBranchDataAside(input.branchId));
    const { driver, lsn, historyId } = await saga.runGuarded(
      'fork',
      async () => h.forkBranchData({ ...(await catalog.forkParent(input.parentBranchId)), childBranchId: input.branchId }),
      () => h.removeForkedData(input.branchId),
    );
    const { port, limitsEnforced } = await saga.runGuarded('start_compute', () => h.startEndpoint(spec), () => h.stopEndpoint(ep));
    const seedCount = await catalog.enabledSeedCount(input.projectId);
    const seeds = await runSeeds(saga, input.hostId, input.projectId, spec, passwordSealed, seedCount);
    await saga.run('finalize', () => catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, limitsEnforced, historyId }));
    // Past finalize the reset is done (the new data serves, the catalog says so): failing to drop
    // the old data must not roll that back (the catalog's parent_lsn would then name the new fork
    // over the old data). A leftover is dropped by the next reset's set_aside.
    await saga.run('cleanup', () =>
      h.dropBranchDataAside(input.branchId).catch((err) => {
        if (isCancellation(err)) throw err;
        log.warn('could not drop the data set aside by the reset; the next reset drops it', { branchId: input.branchId, error: String(err) });
      }),
    );
    return await saga.succeed<BranchResult>({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, seeds });
  } catch (err) {
    return saga.fail(err);
  }
}

/** A replica's compute stopped, its endpoint files and standby data removed, its row gone. Idempotent. */
export async function removeReplica(replicaId: string, hostId: string): Promise<void> {
  const h = host(hostId);
  await catalog.markReplicaDeleting(replicaId);
  // Its data key is its own endpoint id (see EndpointSpec.branchId).
  await h.stopEndpoint({ endpointId: replicaId, branchId: replicaId });
  await h.removeEndpointFiles(replicaId);
  await h.removeBranchData(replicaId);
  await catalog.purgeReplica(replicaId);
}

export interface DeleteBranchInput {
  operationId: string;
  projectId: string;
  branchId: string;
  endpointId: string;
  hostId: string;
}

/** Stop the replicas and the compute, remove their data, forget the branch. Safe to retry after a failure. */
export async function deleteBranch(input: DeleteBranchInput): Promise<void> {
  const saga = new Saga(['mark_deleting', 'remove_replicas', 'stop_compute', 'remove_data', 'purge_catalog'], input.operationId);
  const h = host(input.hostId);
  try {
    await saga.run('mark_deleting', () => catalog.setBranchStatus({ branchId: input.branchId, status: 'deleting' }));
    // Before the primary: a replica's compute, files and standby data dir (its own), then its row.
    await saga.run('remove_replicas', async () => {
      for (const r of await catalog.branchReplicas(input.branchId)) await removeReplica(r.replicaId, r.hostId);
    });
    await saga.run('stop_compute', async () => {
      await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
      await h.removeEndpointFiles(input.endpointId);
    });
    await saga.run('remove_data', () => h.removeBranchData(input.branchId));
    await saga.run('purge_catalog', () => catalog.purgeBranch(input.branchId));
    await saga.succeed(undefined);
  } catch (err) {
    return saga.fail(err);
  }
}
