import { catalog, host, Saga } from './common';

export interface EndpointStateInput {
  operationId?: string;
  projectId: string;
  endpointId: string;
  /** The endpoint's branch (operations are tagged with it); host calls take the data dir from the catalog. */
  branchId: string;
  hostId: string;
  /** resume (default) or restart: a compute that died under a running endpoint. */
  event?: 'resume' | 'restart';
}

/**
 * Scale to zero: a clean stop. Suspend, resume and resize of one endpoint share a workflow id
 * (operations/endpoints.ts), so they never run at the same time.
 */
export async function suspendEndpoint(input: EndpointStateInput): Promise<void> {
  const saga = new Saga(['stop_compute', 'record'], input.operationId);
  const h = host(input.hostId);
  try {
    // A replica's compute serves a data dir of its own (see EndpointSpec.branchId): ask the catalog.
    const compute = (await catalog.computeOf(input.endpointId)) ?? { endpointId: input.endpointId, branchId: input.branchId };
    await saga.run('stop_compute', () => h.stopEndpoint(compute));
    await saga.run('record', () => catalog.setEndpointState({ endpointId: input.endpointId, status: 'suspended', event: 'suspend' }));
    await saga.succeed(undefined);
  } catch (err) {
    return saga.fail(err);
  }
}

export async function resumeEndpoint(input: EndpointStateInput): Promise<void> {
  const saga = new Saga(['start_compute', 'record'], input.operationId);
  const h = host(input.hostId);
  try {
    const { spec } = await catalog.endpointSpec(input.endpointId);
    const { limitsEnforced } = await saga.run('start_compute', () => h.startEndpoint(spec));
    await saga.run('record', async () => {
      if (input.event === 'restart') await catalog.recordComputeEvent({ endpointId: input.endpointId, event: 'restart', detail: { reason: 'the compute had stopped; started again with crash recovery' } });
      else await catalog.setEndpointState({ endpointId: input.endpointId, status: 'running', event: 'resume' });
      await catalog.recordLimits({ endpointId: input.endpointId, limitsEnforced });
    });
    await saga.succeed(undefined);
  } catch (err) {
    return saga.fail(err);
  }
}

export interface ResizeEndpointInput {
  operationId?: string;
  projectId: string;
  endpointId: string;
  branchId: string;
  hostId: string;
  computeCu: number;
  /** api | autoscale: recorded in compute history. */
  reason: string;
  fromCu?: number;
}

/** A new size: catalog first (the compute reads its size from there), then the running compute. */
export async function resizeEndpoint(input: ResizeEndpointInput): Promise<{ limitsEnforced: boolean }> {
  const saga = new Saga(['record', 'apply'], input.operationId);
  try {
    await saga.run('record', () =>
      catalog.setEndpointSize({ endpointId: input.endpointId, computeCu: input.computeCu, detail: { reason: input.reason, from_cu: input.fromCu ?? null, to_cu: input.computeCu } }),
    );
    const r = await saga.run('apply', async () => {
      const { spec } = await catalog.endpointSpec(input.endpointId);
      const applied = await host(input.hostId).resizeEndpoint(spec);
      await catalog.recordLimits({ endpointId: input.endpointId, limitsEnforced: applied.limitsEnforced });
      return applied;
    });
    return await saga.succeed(r);
  } catch (err) {
    return saga.fail(err);
  }
}
