import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { HostEngine } from '../engine/host';
import { endpointRestart } from '../operations/endpoints';
import { startOperation } from '../operations/client';
import { HOST_TIMEOUTS_MEMO, HostTimeouts } from '../domain/timeouts';

export interface SupervisorOptions extends RestartTarget {
  engine: HostEngine;
  logger: Logger;
  everyMs?: number;
}

export interface RestartTarget {
  temporal: Client;
  taskQueue: string;
  hostId: string;
  hostTimeouts: HostTimeouts;
}

/**
 * Starts the endpoint.restart operation for a compute found dead (by the supervisor, or by the
 * proxy, which has already started it). False when another endpoint operation holds it (a
 * restart already on its way, a suspend): the next pass sees again.
 */
export async function startComputeRestart(o: RestartTarget, ep: { projectId?: string; endpointId: string; branchId: string }): Promise<boolean> {
  try {
    await startOperation(
      o.temporal,
      endpointRestart,
      { projectId: ep.projectId ?? '', endpointId: ep.endpointId, branchId: ep.branchId, hostId: o.hostId, event: 'restart' },
      { taskQueue: o.taskQueue, memo: { [HOST_TIMEOUTS_MEMO]: o.hostTimeouts } },
    );
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw err;
  }
}

/**
 * Watches the postmasters this host started: one that died (kill -9, OOM) is started again with
 * crash recovery through the endpoint.restart operation, so the restart is in Temporal's history
 * and in compute history, and queues against suspend and resize like any endpoint operation.
 * Needs Temporal, not the catalog.
 */
export function superviseComputes(o: SupervisorOptions): { stop(): void } {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      for (const spec of await o.engine.deadComputes()) {
        try {
          if (await startComputeRestart(o, spec)) o.logger.warn({ endpointId: spec.endpointId }, 'compute found dead; restarting it with crash recovery');
        } catch (err) {
          o.logger.warn({ err, endpointId: spec.endpointId }, 'could not start a compute restart');
        }
      }
    } catch (err) {
      o.logger.warn({ err }, 'compute supervision pass failed');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), o.everyMs ?? 2000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
