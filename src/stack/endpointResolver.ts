import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Db } from '../db';
import { allowlistPermits } from '../domain/allowlist';
import { ProxyRefusal, ProxyRoute } from '../proxy/server';
import { startWorkflow } from '../temporal/start';

export interface ResolverDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
}

const WAKE_ATTEMPTS = 3;

/**
 * The proxy's view of the catalog: allowlist first (no byte reaches a compute from a refused
 * address), then wake-on-connect for suspended computes, then the route.
 */
export function createEndpointResolver({ db, temporal, taskQueue, logger }: ResolverDeps) {
  // Clients arriving together for one suspended endpoint share one resume.
  const waking = new Map<string, Promise<void>>();

  const lookup = (endpointId: string) =>
    db
      .selectFrom('endpoints')
      .select(['id', 'project_id', 'branch_id', 'host_id', 'port', 'status', 'allowlist'])
      .where('id', '=', endpointId)
      .executeTakeFirst();

  type Row = NonNullable<Awaited<ReturnType<typeof lookup>>>;

  async function resume(ep: Row): Promise<void> {
    for (let attempt = 0; attempt < WAKE_ATTEMPTS; attempt++) {
      // USE_EXISTING joins a resume already running; if a suspend holds the id, we wait for it
      // to finish and try again.
      const handle = await startWorkflow(temporal, {
        taskQueue,
        workflowType: 'resumeEndpoint',
        workflowId: `endpoint-state/${ep.id}`,
        args: [{ endpointId: ep.id, branchId: ep.branch_id, hostId: ep.host_id }],
        projectId: ep.project_id,
        branchId: ep.branch_id,
        kind: 'endpoint.resume',
        joinExisting: true,
      });
      await handle.result();
      const now = await lookup(ep.id);
      if (now?.status === 'running') return;
    }
    throw new ProxyRefusal(`could not resume endpoint "${ep.id}"`, '57P03');
  }

  function wake(ep: Row): Promise<void> {
    let p = waking.get(ep.id);
    if (!p) {
      p = resume(ep).finally(() => waking.delete(ep.id));
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
      let ep = await lookup(endpointId);
      if (!ep) return undefined;
      if (!allowlistPermits(ep.allowlist, client.address)) {
        throw new ProxyRefusal(`client address ${client.address} is not allowed by the IP allowlist of endpoint "${endpointId}"`, '28000');
      }
      if (ep.status === 'suspended') {
        try {
          await wake(ep);
        } catch (err) {
          logger.error({ err, endpointId }, 'wake-on-connect failed');
          throw err instanceof ProxyRefusal ? err : new ProxyRefusal(`could not resume endpoint "${endpointId}": ${(err as Error).message}`, '57P03');
        }
        ep = (await lookup(endpointId)) ?? ep;
      }
      if (ep.status !== 'running' || ep.port === null) {
        throw new ProxyRefusal(`endpoint "${endpointId}" is ${ep.status}, not accepting connections`, '57P03');
      }
      touch(endpointId);
      return { host: '127.0.0.1', port: ep.port };
    },
    onSessionEnd: touch,
  };
}
