import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Db } from '../db';
import { allowlistPermits } from '../domain/allowlist';
import { ProxyRefusal, ProxyRoute } from '../proxy/server';
import { startOperation } from '../operations/client';
import { endpointResume, workflowIds, workflowType } from '../operations';
import type { EndpointSpec } from '../engine/host';
import { HOST_TIMEOUTS_MEMO, HostTimeouts } from '../domain/timeouts';
import { computeDataId } from '../domain/computeData';

export interface ResolverDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  hostTimeouts: HostTimeouts;
  /** Aborted when the stack stops: cancels the wakes' result polls before the connection closes. */
  stopping?: AbortSignal;
  /**
   * The host worker running in this process, if any. A wake for one of its computes starts the
   * compute here, before the resume workflow, instead of waiting for the workflow's tasks and
   * activity dispatch (about half of a cold start otherwise).
   */
  localHost?: {
    hostId: string;
    /** The host activity: resolves once the compute accepts connections. */
    startEndpoint(spec: EndpointSpec): Promise<unknown>;
    /** The catalog activity the workflow records with; a state change is recorded only once. */
    setEndpointState(i: { endpointId: string; status: 'running'; event: 'resume'; detail?: unknown }): Promise<void>;
    /**
     * Whether this host started the branch's compute, nobody stopped it (a suspend or reset in
     * progress has), and its postmaster is gone: such a compute is woken like a suspended one.
     * A start already under way (the supervisor's restart) is waited for first.
     */
    computeDied(branchId: string): Promise<boolean>;
    /** Records a crash restart the proxy did (compute history and Temporal), off the client's path. */
    recordRestart(ep: { projectId: string; endpointId: string; branchId: string }): Promise<void>;
    /** The compute's unix socket file: this host's computes are relayed to over it. */
    socketFile(endpointId: string, port: number): string;
  };
}

const WAKE_ATTEMPTS = 3;

/**
 * The proxy's view of the catalog: allowlist first (no byte reaches a compute from a refused
 * address), then wake-on-connect for suspended computes, then the route.
 */
export function createEndpointResolver({ db, temporal, taskQueue, logger, hostTimeouts, localHost, stopping }: ResolverDeps) {
  const resultOf = (h: { result(): Promise<unknown> }) => (stopping ? temporal.withAbortSignal(stopping, () => h.result()) : h.result());
  /**
   * Clients arriving together for one suspended endpoint share one resume. An entry lives until
   * the resume workflow has recorded the compute as running, so clients arriving meanwhile are
   * routed at once instead of starting another resume.
   */
  const waking = new Map<string, Promise<void>>();

  const lookup = (endpointId: string) =>
    db
      .selectFrom('endpoints')
      .innerJoin('branches', 'branches.id', 'endpoints.branch_id')
      .select([
        'endpoints.id',
        'endpoints.project_id',
        'endpoints.branch_id',
        'endpoints.role',
        'endpoints.host_id',
        'endpoints.port',
        'endpoints.compute_cu',
        'endpoints.status',
        'endpoints.allowlist',
        'branches.status as branch_status',
      ])
      .where('endpoints.id', '=', endpointId)
      .executeTakeFirst();

  type Row = NonNullable<Awaited<ReturnType<typeof lookup>>>;

  /**
   * Holds the endpoint's state workflow id with a resume: either a new resumeEndpoint workflow or
   * one already running. Undefined when another operation (a suspend) holds the id: then we have
   * waited for it to end and the caller tries again.
   */
  async function claimResume(ep: Row): Promise<WorkflowHandle | undefined> {
    const workflowId = workflowIds.endpointState(ep.id);
    try {
      return await startOperation(
        temporal,
        endpointResume,
        { projectId: ep.project_id, endpointId: ep.id, branchId: ep.branch_id, hostId: ep.host_id },
        { taskQueue, memo: { [HOST_TIMEOUTS_MEMO]: hostTimeouts } },
      );
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    const running = temporal.workflow.getHandle(workflowId);
    const { type } = await running.describe();
    if (type === workflowType(endpointResume)) return running;
    await resultOf(running).catch(() => undefined);
    return undefined;
  }

  /** Through the resume workflow only: the compute is on another host. */
  async function resumeViaWorkflow(ep: Row): Promise<void> {
    for (let attempt = 0; attempt < WAKE_ATTEMPTS; attempt++) {
      const handle = await claimResume(ep);
      if (handle) await resultOf(handle);
      if ((await lookup(ep.id))?.status === 'running') return;
    }
    throw new ProxyRefusal(`could not resume endpoint "${ep.id}"`, '57P03');
  }

  /**
   * Resolves once the compute accepts connections; `recorded` once the catalog and Temporal have
   * caught up. A compute on this host is started here, with no workflow task or activity
   * dispatch before the client is served (they were about half of a cold start); the resume
   * workflow runs right after, so the wake is in Temporal's history, holds the endpoint's state
   * id against a concurrent suspend and, having the last word, leaves catalog and compute agreeing
   * even if a suspend slipped in between.
   */
  async function resume(ep: Row): Promise<{ recorded: Promise<void> }> {
    if (!localHost || localHost.hostId !== ep.host_id) {
      await resumeViaWorkflow(ep);
      return { recorded: Promise.resolve() };
    }
    await localHost.startEndpoint({ endpointId: ep.id, branchId: computeDataId(ep), port: ep.port!, computeCu: ep.compute_cu, projectId: ep.project_id });
    const recorded = (async () => {
      await localHost.setEndpointState({ endpointId: ep.id, status: 'running', event: 'resume', detail: { via: 'proxy' } });
      for (let attempt = 0; attempt < WAKE_ATTEMPTS; attempt++) {
        const handle = await claimResume(ep);
        if (handle) return void (await resultOf(handle));
      }
    })();
    recorded.catch((err) => logger.warn({ err, endpointId: ep.id }, 'could not record a wake-on-connect'));
    return { recorded };
  }

  function wake(ep: Row): Promise<void> {
    let p = waking.get(ep.id);
    if (!p) {
      const forget = () => {
        if (waking.get(ep.id) === p) waking.delete(ep.id);
      };
      p = resume(ep).then(
        ({ recorded }) => {
          recorded.finally(forget).catch(() => undefined);
        },
        (err) => {
          forget();
          throw err;
        },
      );
      waking.set(ep.id, p);
    }
    return p;
  }

  const touch = (endpointId: string) => {
    db.updateTable('endpoints')
      .set({ last_active_at: sql`now()` })
      .where('id', '=', endpointId)
      .execute()
      .catch((err) => logger.warn({ err, endpointId }, 'could not record endpoint activity'));
  };

  return {
    async resolve(endpointId: string, client: { address: string }): Promise<ProxyRoute | undefined> {
      const ep = await lookup(endpointId);
      if (!ep) return undefined;
      if (!allowlistPermits(ep.allowlist, client.address)) {
        throw new ProxyRefusal(`client address ${client.address} is not allowed by the IP allowlist of endpoint "${endpointId}"`, '28000');
      }
      if (ep.status === 'suspended' && ep.branch_status !== 'ready') {
        // A reset or delete owns the data dir; starting a compute on it now could start one on a
        // half-made fork.
        throw new ProxyRefusal(`endpoint "${endpointId}" is suspended and its branch is ${ep.branch_status}; try again when that finishes`, '57P03');
      }
      if (ep.status === 'suspended' || waking.has(ep.id)) {
        try {
          await wake(ep);
        } catch (err) {
          logger.error({ err, endpointId }, 'wake-on-connect failed');
          throw err instanceof ProxyRefusal ? err : new ProxyRefusal(`could not resume endpoint "${endpointId}": ${(err as Error).message}`, '57P03');
        }
      } else if (ep.status !== 'running') {
        throw new ProxyRefusal(`endpoint "${endpointId}" is ${ep.status}, not accepting connections`, '57P03');
      } else if (localHost?.hostId === ep.host_id && ep.branch_status === 'ready' && ep.port !== null && (await localHost.computeDied(computeDataId(ep)))) {
        // Catalog says running, the postmaster is gone (killed, crashed): start it now rather than
        // answer "compute unavailable" until the supervisor's next pass.
        await localHost.startEndpoint({ endpointId: ep.id, branchId: computeDataId(ep), port: ep.port, computeCu: ep.compute_cu, projectId: ep.project_id });
        localHost
          .recordRestart({ projectId: ep.project_id, endpointId: ep.id, branchId: ep.branch_id })
          .catch((err) => logger.warn({ err, endpointId }, 'could not record a crash restart'));
      }
      // Suspend and resume keep the port (and no wake happens while a reset holds the branch).
      if (ep.port === null) throw new ProxyRefusal(`endpoint "${endpointId}" has no compute port`, '57P03');
      touch(endpointId);
      const local = localHost?.hostId === ep.host_id;
      return { host: '127.0.0.1', port: ep.port, ...(local && { socketPath: localHost.socketFile(ep.id, ep.port) }) };
    },
    onSessionEnd: touch,
  };
}
