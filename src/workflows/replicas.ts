import { catalog, host, Saga } from './common';
import { removeReplica } from './branches';
import type { ReplicationStatus } from '../engine/replication';
import type { EndpointStateInput } from './endpoints';

export interface CreateReplicaInput {
  operationId: string;
  projectId: string;
  branchId: string;
  /** The replica's endpoint id (ep-…): the proxy routes it like any endpoint. */
  replicaId: string;
  hostId: string;
  /** Its own size; the primary's when not given. */
  computeCu?: number;
}

export interface ReplicaResult {
  replicaId: string;
  port: number;
  replication: ReplicationStatus | null;
}

/**
 * A read replica of the branch: its endpoint row, then on the host its port, a fork of the
 * primary's data as a hot standby of the primary (no history of its own) and its compute,
 * ready once consistent; then running in the catalog with its first lag measurement. Undone
 * entirely when a step fails.
 */
export async function createReplica(input: CreateReplicaInput): Promise<ReplicaResult> {
  const saga = new Saga(['catalog', 'fork_and_start', 'finalize'], input.operationId);
  const h = host(input.hostId);
  try {
    const { computeCu, primary } = await saga.runGuarded(
      'catalog',
      () => catalog.createReplicaRecords({ projectId: input.projectId, branchId: input.branchId, replicaId: input.replicaId, hostId: input.hostId, computeCu: input.computeCu }),
      () => catalog.purgeReplica(input.replicaId),
    );
    const { port, limitsEnforced } = await saga.runGuarded(
      'fork_and_start',
      () =>
        h.provisionReplicaCompute({
          replicaId: input.replicaId,
          primaryBranchId: input.branchId,
          primaryEndpoint: { endpointId: primary.endpointId, port: primary.port },
          computeCu,
          projectId: input.projectId,
        }),
      async () => {
        await h.stopEndpoint({ endpointId: input.replicaId, branchId: input.replicaId });
        await h.removeEndpointFiles(input.replicaId);
        await h.removeBranchData(input.replicaId);
      },
    );
    const replication = await saga.run('finalize', async () => {
      const spec = { endpointId: input.replicaId, branchId: input.replicaId, port, computeCu, projectId: input.projectId };
      // A first measurement for the answer; a failure to measure never fails the creation.
      const status = await h.replicationStatus({ replica: spec, primary }).catch(() => null);
      await catalog.markReplicaReady({ replicaId: input.replicaId, port, limitsEnforced, replication: status });
      return status;
    });
    return await saga.succeed<ReplicaResult>({ replicaId: input.replicaId, port, replication });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface DeleteReplicaInput {
  operationId: string;
  projectId: string;
  branchId: string;
  replicaId: string;
  hostId: string;
}

/** Stop the replica's compute, remove its files and standby data, forget it. Safe to retry. */
export async function deleteReplica(input: DeleteReplicaInput): Promise<void> {
  const saga = new Saga(['remove_replica'], input.operationId);
  try {
    await saga.run('remove_replica', () => removeReplica(input.replicaId, input.hostId));
    await saga.succeed(undefined);
  } catch (err) {
    return saga.fail(err);
  }
}

/** A replica's lag measured now and recorded; null when it cannot be measured (not running). */
async function measureReplica(replicaId: string): Promise<ReplicationStatus | null> {
  const pair = await catalog.replicaPair(replicaId);
  if (!pair) return null;
  const status = await host(pair.hostId).replicationStatus({ replica: pair.replica, primary: pair.primary });
  if (status) await catalog.recordReplication({ endpointId: replicaId, status });
  return status;
}

/**
 * resumeEndpoint for a replica, answering its lag measured right after the start. Shares the
 * endpoint's state workflow id with suspend, so the two never overlap. A standby is ready once
 * consistent; it then catches up by streaming, or from the archive while the primary is suspended.
 */
export async function resumeReplica(input: EndpointStateInput): Promise<{ replication: ReplicationStatus | null }> {
  const saga = new Saga(['start_compute', 'record', 'measure'], input.operationId);
  try {
    const { spec } = await catalog.endpointSpec(input.endpointId);
    const { limitsEnforced } = await saga.run('start_compute', () => host(input.hostId).startEndpoint(spec));
    await saga.run('record', async () => {
      await catalog.setEndpointState({ endpointId: input.endpointId, status: 'running', event: 'resume' });
      await catalog.recordLimits({ endpointId: input.endpointId, limitsEnforced });
    });
    const replication = await saga.run('measure', () => measureReplica(input.endpointId).catch(() => null));
    return await saga.succeed({ replication });
  } catch (err) {
    return saga.fail(err);
  }
}
