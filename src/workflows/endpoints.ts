import { catalog, host, Saga } from './common';

export interface EndpointStateInput {
  operationId?: string;
  endpointId: string;
  branchId: string;
  hostId: string;
}

/**
 * Scale to zero: a clean stop. Suspend and resume of one endpoint share the workflow id
 * endpoint-state/<id>, so they never run at the same time.
 */
export async function suspendEndpoint(input: EndpointStateInput): Promise<void> {
  const saga = new Saga(['stop_compute', 'record']);
  const h = host(input.hostId);
  try {
    await saga.run('stop_compute', () => h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId }));
    await saga.run('record', () => catalog.setEndpointState({ endpointId: input.endpointId, status: 'suspended', event: 'suspend' }));
    if (input.operationId) await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done' });
  } catch (err) {
    return saga.fail(input.operationId, err);
  }
}

export async function resumeEndpoint(input: EndpointStateInput): Promise<void> {
  const saga = new Saga(['start_compute', 'record']);
  const h = host(input.hostId);
  try {
    await saga.run('start_compute', () => h.startEndpoint(input.endpointId));
    await saga.run('record', () => catalog.setEndpointState({ endpointId: input.endpointId, status: 'running', event: 'resume' }));
    if (input.operationId) await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done' });
  } catch (err) {
    return saga.fail(input.operationId, err);
  }
}

export interface ResizeEndpointInput {
  operationId?: string;
  endpointId: string;
  hostId: string;
  computeCu: number;
  /** api | autoscale: recorded in compute history. */
  reason: string;
  fromCu?: number;
}

/** A new size: catalog first (the compute reads its size from there), then the running compute. */
export async function resizeEndpoint(input: ResizeEndpointInput): Promise<{ limitsEnforced: boolean }> {
  const saga = new Saga(['record', 'apply']);
  try {
    await saga.run('record', () =>
      catalog.setEndpointSize({ endpointId: input.endpointId, computeCu: input.computeCu, detail: { reason: input.reason, from_cu: input.fromCu ?? null, to_cu: input.computeCu } }),
    );
    const r = await saga.run('apply', () => host(input.hostId).resizeEndpoint(input.endpointId));
    if (input.operationId) await catalog.finishOperation({ operationId: input.operationId, status: 'succeeded', step: 'done', result: r });
    return r;
  } catch (err) {
    return saga.fail(input.operationId, err);
  }
}
