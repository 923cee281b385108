import { catalog, host, Saga } from './common';
import type { ProjectRecordsInput } from '../activities/catalog';

export interface CreateProjectInput extends ProjectRecordsInput {
  operationId: string;
}

export interface CreateProjectResult {
  projectId: string;
  branchId: string;
  endpointId: string;
  port: number;
  driver: string;
  userCanCreateRoles: boolean;
}

/** Catalog rows, a fresh cluster on the primary branch, its endpoint running, the user role. */
export async function createProject(input: CreateProjectInput): Promise<CreateProjectResult> {
  const saga = new Saga(['catalog', 'reserve_port', 'init_cluster', 'start_compute', 'bootstrap_roles', 'finalize'], input.operationId);
  const h = host(input.hostId);
  try {
    await saga.runGuarded('catalog', () => catalog.createProjectRecords(input), () => catalog.purgeProject(input.projectId));
    // The host owns its ports: the catalog records the one it gave, and removing the endpoint's
    // files on the host releases it.
    const port = await saga.runGuarded(
      'reserve_port',
      async () => {
        const p = await h.reservePort(input.endpointId);
        await catalog.recordEndpointPort({ endpointId: input.endpointId, port: p });
        return p;
      },
      () => h.removeEndpointFiles(input.endpointId),
    );
    const { driver, historyId } = await saga.runGuarded('init_cluster', () => h.createRootBranchData({ branchId: input.branchId, pgVersion: input.pgVersion }), () => h.removeBranchData(input.branchId));
    const { spec, passwordSealed } = await catalog.endpointSpec(input.endpointId);
    const { limitsEnforced } = await saga.runGuarded('start_compute', () => h.startEndpoint(spec), async () => {
      await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
      await h.removeEndpointFiles(input.endpointId);
    });
    const { createRole } = await saga.run('bootstrap_roles', () => h.bootstrapEndpoint({ spec, passwordSealed }));
    await saga.run('finalize', () =>
      catalog.markProjectReady({ projectId: input.projectId, branchId: input.branchId, endpointId: input.endpointId, driver, limitsEnforced, historyId }),
    );
    return await saga.succeed<CreateProjectResult>({
      projectId: input.projectId,
      branchId: input.branchId,
      endpointId: input.endpointId,
      port,
      driver,
      userCanCreateRoles: createRole,
    });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface DeleteProjectInput {
  operationId: string;
  projectId: string;
}

/** Stop every compute, remove every data dir, then forget the project. Safe to retry. */
export async function deleteProject(input: DeleteProjectInput): Promise<void> {
  const saga = new Saga(['mark_deleting', 'stop_computes', 'remove_data', 'purge_catalog'], input.operationId);
  try {
    const endpoints = await saga.run('mark_deleting', () => catalog.markProjectDeleting(input.projectId));
    await saga.run('stop_computes', () =>
      Promise.all(
        endpoints.map(async (e) => {
          await host(e.hostId).stopEndpoint({ endpointId: e.endpointId, branchId: e.branchId });
          await host(e.hostId).removeEndpointFiles(e.endpointId);
        }),
      ),
    );
    const branches = await catalog.listProjectBranches(input.projectId);
    // Replicas' data dirs are their own (named after the replica), beside the branches'.
    const replicas = endpoints.filter((e) => e.replica).map((e) => ({ branchId: e.branchId, hostId: e.hostId }));
    await saga.run('remove_data', () => Promise.all([...branches, ...replicas].map((b) => host(b.hostId).removeBranchData(b.branchId))));
    await saga.run('purge_catalog', () => catalog.purgeProject(input.projectId));
    await saga.succeed(undefined);
  } catch (err) {
    return saga.fail(err);
  }
}
