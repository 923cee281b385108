import { catalog, host, Saga } from './common';
import type { BranchRecordsInput } from '../activities/catalog';
import type { SeedResult } from '../engine/seeds';

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

/** Fork the parent's data, start a compute on it, run the seeds; undo everything if a step fails. */
export async function createBranch(input: CreateBranchInput): Promise<BranchResult> {
  const saga = new Saga(['catalog', 'fork_and_start', 'seeds', 'finalize']);
  const h = host(input.hostId);
  try {
    // The port lives on the endpoint row: purging the catalog releases it.
    const { seedCount } = await saga.runGuarded('catalog', () => catalog.createBranchRecords(input), () => catalog.purgeBranch(input.branchId));
    const { port, driver, lsn } = await saga.runGuarded(
      'fork_and_start',
      () => h.provisionBranchCompute({ endpointId: input.endpointId, parentBranchId: input.parentBranchId, childBranchId: input.branchId }),
      async () => {
        await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
        await h.removeEndpointFiles(input.endpointId);
        await h.removeBranchData(input.branchId);
      },
    );
    const seeds = seedCount > 0 ? await saga.run('seeds', () => h.runSeeds(input.endpointId)) : [];
    await saga.run('finalize', () => catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, driver, lsn }));
    const result = { branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, seeds };
    await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done', result });
    return result;
  } catch (err) {
    return saga.fail(input.operationId, err);
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
  const saga = new Saga(['mark_resetting', 'stop_compute', 'set_aside', 'fork', 'start_compute', 'seeds', 'finalize', 'cleanup']);
  const h = host(input.hostId);
  const ep = { endpointId: input.endpointId, branchId: input.branchId };
  try {
    await saga.run('mark_resetting', () => catalog.setBranchStatus({ branchId: input.branchId, status: 'resetting' }), () =>
      catalog.setBranchStatus({ branchId: input.branchId, status: 'ready' }),
    );
    await saga.run('stop_compute', () => h.stopEndpoint(ep), () => h.startEndpoint(input.endpointId));
    await saga.run('set_aside', () => h.setBranchDataAside(input.branchId), () => h.restoreBranchDataAside(input.branchId));
    const { driver, lsn } = await saga.runGuarded(
      'fork',
      () => h.forkBranchData({ parentBranchId: input.parentBranchId, childBranchId: input.branchId }),
      () => h.removeBranchData(input.branchId),
    );
    const { port } = await saga.runGuarded('start_compute', () => h.startEndpoint(input.endpointId), () => h.stopEndpoint(ep));
    const seedCount = await catalog.enabledSeedCount(input.projectId);
    const seeds = seedCount > 0 ? await saga.run('seeds', () => h.runSeeds(input.endpointId)) : [];
    await saga.run('finalize', () => catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, driver, lsn }));
    await saga.run('cleanup', () => h.dropBranchDataAside(input.branchId));
    const result = { branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn, seeds };
    await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done', result });
    return result;
  } catch (err) {
    return saga.fail(input.operationId, err);
  }
}

export interface DeleteBranchInput {
  operationId: string;
  branchId: string;
  endpointId: string;
  hostId: string;
}

/** Stop the compute, remove the data, forget the branch. Safe to retry after a failure. */
export async function deleteBranch(input: DeleteBranchInput): Promise<void> {
  const saga = new Saga(['mark_deleting', 'stop_compute', 'remove_data', 'purge_catalog']);
  const h = host(input.hostId);
  try {
    await saga.run('mark_deleting', () => catalog.setBranchStatus({ branchId: input.branchId, status: 'deleting' }));
    await saga.run('stop_compute', async () => {
      await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
      await h.removeEndpointFiles(input.endpointId);
    });
    await saga.run('remove_data', () => h.removeBranchData(input.branchId));
    await saga.run('purge_catalog', () => catalog.purgeBranch(input.branchId));
    await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done' });
  } catch (err) {
    return saga.fail(input.operationId, err);
  }
}
