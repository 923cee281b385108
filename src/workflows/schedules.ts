import { startChild, uuid4, WorkflowIdReusePolicy, ParentClosePolicy, log } from '@temporalio/workflow';
import { catalog, host } from './common';
import { suspendEndpoint, resizeEndpoint } from './endpoints';
import { autoscaleDecision } from '../domain/sizing';
import { deleteBranch } from './branches';

/** Child workflows the sweeps start outlive the sweep and are serialized by their resource id. */
const childOptions = {
  parentClosePolicy: ParentClosePolicy.ABANDON,
  workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
};

async function startOnce(start: () => Promise<unknown>, what: string): Promise<boolean> {
  try {
    await start();
    return true;
  } catch (err) {
    // Another operation holds the resource (e.g. a resume in flight): the next sweep retries.
    log.info('skipped', { what, error: String(err) });
    return false;
  }
}

/** Run by a Schedule: suspend computes idle for longer than their auto_suspend_seconds. */
export async function autoSuspendSweep(): Promise<{ suspended: string[] }> {
  const idle = await catalog.findIdleEndpoints();
  const suspended: string[] = [];
  for (const ep of idle) {
    if (await host(ep.hostId).endpointHasClients(ep.endpointId)) {
      await catalog.touchEndpoint(ep.endpointId);
      continue;
    }
    const ok = await startOnce(
      () =>
        startChild(suspendEndpoint, {
          ...childOptions,
          workflowId: `endpoint-state/${ep.endpointId}`,
          args: [{ endpointId: ep.endpointId, branchId: ep.branchId, hostId: ep.hostId }],
        }),
      ep.endpointId,
    );
    if (ok) suspended.push(ep.endpointId);
  }
  return { suspended };
}

/** Run by a Schedule: delete unprotected branches past expires_at. */
export async function expireBranches(): Promise<{ deleted: string[] }> {
  const expired = await catalog.findExpiredBranches();
  const deleted: string[] = [];
  for (const b of expired) {
    const placement = await catalog.branchPlacement(b.branchId);
    if (!placement) continue;
    const operationId = `op-ttl${uuid4().replace(/-/g, '').slice(0, 12)}`;
    const workflowId = `branch/${b.branchId}`;
    await catalog.openOperation({ operationId, orgId: b.orgId, projectId: b.projectId, kind: 'branch.expire', workflowId });
    const ok = await startOnce(
      () =>
        startChild(deleteBranch, {
          ...childOptions,
          workflowId,
          args: [{ operationId, branchId: b.branchId, endpointId: placement.endpointId, hostId: placement.hostId }],
        }),
      b.branchId,
    );
    if (ok) deleted.push(b.branchId);
    else await catalog.finishOperation({ operationId, status: 'failed', step: 'queued', error: { message: 'another operation holds the branch' } });
  }
  return { deleted };
}

/** Run by a Schedule: move autoscaled computes one tier up or down from their measured CPU use. */
export async function autoscaleSweep(): Promise<{ resized: { endpointId: string; from: number; to: number }[] }> {
  const candidates = await catalog.findAutoscaledEndpoints();
  const resized: { endpointId: string; from: number; to: number }[] = [];
  for (const ep of candidates) {
    const sample = await host(ep.hostId).sampleCpu(ep.endpointId);
    if (sample.utilization === null) continue; // first sample, or limits not enforced here
    const next = autoscaleDecision({ currentCu: sample.computeCu, minCu: ep.minCu, maxCu: ep.maxCu, cpuUtilization: sample.utilization });
    if (next === sample.computeCu) continue;
    const ok = await startOnce(
      () =>
        startChild(resizeEndpoint, {
          ...childOptions,
          workflowId: `endpoint-state/${ep.endpointId}`,
          args: [{ endpointId: ep.endpointId, hostId: ep.hostId, computeCu: next, fromCu: sample.computeCu, reason: 'autoscale' }],
        }),
      ep.endpointId,
    );
    if (ok) resized.push({ endpointId: ep.endpointId, from: sample.computeCu, to: next });
  }
  return { resized };
}
