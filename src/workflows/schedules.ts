import { log, uuid4 } from '@temporalio/workflow';
import { planRetention } from '../domain/retention';
import { catalog, host } from './common';
import { startDecidedOperation } from './start';
import { autoscaleDecision } from '../domain/sizing';
import { endpointAutoSuspend, endpointAutoscale } from '../operations/endpoints';
import { branchExpire } from '../operations/branches';
import { backupBase } from '../operations/backups';

/**
 * Run by a Schedule: suspend computes idle for longer than their auto_suspend_seconds. Each
 * suspend is its own operation; a run that finds nothing is a sweep run only (see README).
 */
export async function autoSuspendSweep(): Promise<{ suspended: string[] }> {
  const idle = await catalog.findIdleEndpoints();
  const suspended: string[] = [];
  for (const ep of idle) {
    if (await host(ep.hostId).endpointHasClients(ep.spec)) {
      await catalog.touchEndpoint(ep.spec.endpointId);
      continue;
    }
    const input = { projectId: ep.projectId, endpointId: ep.spec.endpointId, branchId: ep.branchId, hostId: ep.hostId };
    if (await startDecidedOperation(endpointAutoSuspend, input, ep)) suspended.push(ep.spec.endpointId);
  }
  return { suspended };
}

/**
 * Run by a Schedule: a base backup of every branch whose current history has none within the
 * interval, so a restore replays at most that much WAL. Each base is its own operation.
 */
export async function backupSweep(args: { intervalHours: number; retentionDays: number }): Promise<{ started: string[]; prunedBases: number }> {
  const due = await catalog.findBranchesNeedingBase(args.intervalHours);
  const started: string[] = [];
  for (const b of due) {
    const suffix = uuid4().replace(/-/g, '').slice(0, 12);
    const input = { projectId: b.projectId, branchId: b.branchId, hostId: b.hostId, baseId: `base-${suffix}`, backupId: `bk-${suffix}` };
    if (await startDecidedOperation(backupBase, input, b)) started.push(b.branchId);
  }
  // Archiving failures become visible on the endpoint (wal_archive), not only in its log; a
  // replica (which archives nothing) gets its replication lag measured instead.
  for (const ep of await catalog.runningEndpoints()) {
    if (ep.replica) {
      const pair = await catalog.replicaPair(ep.spec.endpointId);
      const status = pair ? await host(pair.hostId).replicationStatus({ replica: pair.replica, primary: pair.primary }).catch(() => null) : null;
      if (status) await catalog.recordReplication({ endpointId: ep.spec.endpointId, status });
      continue;
    }
    const stats = await host(ep.hostId).archiverStatus(ep.spec).catch(() => null);
    if (stats) await catalog.recordArchiverStatus({ endpointId: ep.spec.endpointId, stats });
  }
  // Retention: bases and WAL nothing can ask for any more (see domain/retention).
  let prunedBases = 0;
  for (const r of await catalog.retentionInputs(args.retentionDays)) {
    const plan = planRetention(r);
    const h = host(r.hostId);
    try {
      for (const b of plan.removeBases) await h.removeBase({ branchId: r.branchId, historyId: b.historyId, baseId: b.id });
      for (const historyId of plan.removeHistories) await h.removeHistory({ branchId: r.branchId, historyId });
      for (const w of plan.pruneWal) await h.pruneHistory({ branchId: r.branchId, ...w });
      await catalog.forgetPruned({ branchId: r.branchId, baseIds: plan.removeBases.map((b) => b.id), historyIds: plan.removeHistories });
      prunedBases += plan.removeBases.length;
    } catch (err) {
      log.warn('retention of a branch failed; the next sweep tries again', { branchId: r.branchId, error: String(err) });
    }
  }
  return { started, prunedBases };
}

/** Run by a Schedule: delete unprotected branches past expires_at. */
export async function expireBranches(): Promise<{ deleted: string[] }> {
  const expired = await catalog.findExpiredBranches();
  const deleted: string[] = [];
  for (const b of expired) {
    const placement = await catalog.branchPlacement(b.branchId);
    if (!placement) continue;
    const input = { projectId: b.projectId, branchId: b.branchId, endpointId: placement.endpointId, hostId: placement.hostId };
    if (await startDecidedOperation(branchExpire, input, b)) deleted.push(b.branchId);
  }
  return { deleted };
}

/** Run by a Schedule: move autoscaled computes one tier up or down from their measured CPU use. */
export async function autoscaleSweep(): Promise<{ resized: { endpointId: string; from: number; to: number }[] }> {
  const candidates = await catalog.findAutoscaledEndpoints();
  const resized: { endpointId: string; from: number; to: number }[] = [];
  for (const ep of candidates) {
    const { cpuSeconds } = await host(ep.hostId).sampleCpu(ep.endpointId);
    const sample = await catalog.recordCpuSample({ endpointId: ep.endpointId, cpuSeconds });
    if (sample.utilization === null) continue; // first sample, or limits not enforced here
    const next = autoscaleDecision({ currentCu: sample.computeCu, minCu: ep.minCu, maxCu: ep.maxCu, cpuUtilization: sample.utilization });
    if (next === sample.computeCu) continue;
    const input = { projectId: ep.projectId, endpointId: ep.endpointId, branchId: ep.branchId, hostId: ep.hostId, computeCu: next, fromCu: sample.computeCu, reason: 'autoscale' };
    if (await startDecidedOperation(endpointAutoscale, input, ep)) resized.push({ endpointId: ep.endpointId, from: sample.computeCu, to: next });
  }
  return { resized };
}

/** How long metrics history is kept (GET …/metrics/history answers at most this). */
export const METRICS_KEEP_HOURS = 24;

/**
 * Run by a Schedule (every LAMPION_METRICS_SWEEP_SECONDS, 30 s): a snapshot of every running
 * endpoint, measured on its host; then history older than 24 h goes. A host that does not answer
 * costs its endpoints one row, not the sweep.
 */
export async function metricsSweep(): Promise<{ sampled: number }> {
  const rows: { projectId: string; endpointId: string; m: Awaited<ReturnType<ReturnType<typeof host>['sampleEndpointMetrics']>> }[] = [];
  for (const ep of await catalog.runningEndpoints()) {
    const m = await host(ep.hostId).sampleEndpointMetrics(ep.spec).catch(() => null);
    if (m && ep.spec.projectId) rows.push({ projectId: ep.spec.projectId, endpointId: ep.spec.endpointId, m });
  }
  await catalog.recordMetricsSnapshots({ rows, keepHours: METRICS_KEEP_HOURS });
  return { sampled: rows.length };
}
