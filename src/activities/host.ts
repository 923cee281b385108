import { sql } from 'kysely';
import { ApplicationFailure } from '@temporalio/common';
import type { Db } from '../db';
import { isUniqueViolation } from '../db';
import type { HostEngine } from '../engine/host';
import { isPortFree } from '../engine/ports';
import { decryptSecret } from '../domain/secrets';
import { withFaults } from './faults';

export interface HostDeps {
  db: Db;
  engine: HostEngine;
  hostId: string;
  secretKey: Buffer;
  portRange: { min: number; max: number };
  faults?: readonly string[];
}

/** Engine work on the machine that holds the data. Idempotent, like every activity. */
export function createHostActivities({ db, engine, hostId, secretKey, portRange, faults = [] }: HostDeps) {
  async function endpointSpec(endpointId: string) {
    const ep = await db.selectFrom('endpoints').selectAll().where('id', '=', endpointId).executeTakeFirst();
    if (!ep) throw ApplicationFailure.nonRetryable(`endpoint ${endpointId} is not in the catalog`, 'NotFound');
    if (ep.port === null) throw ApplicationFailure.nonRetryable(`endpoint ${endpointId} has no port`, 'NoPort');
    return { row: ep, spec: { endpointId, branchId: ep.branch_id, port: ep.port } };
  }

  const activities = {
    /**
     * Picks a port that is free on this host and records it; the unique (host_id, port) index
     * settles races between concurrent provisioning.
     */
    async reservePort(endpointId: string): Promise<number> {
      const current = await db.selectFrom('endpoints').select('port').where('id', '=', endpointId).executeTakeFirst();
      if (!current) throw ApplicationFailure.nonRetryable(`endpoint ${endpointId} is not in the catalog`, 'NotFound');
      if (current.port !== null) return current.port;
      const taken = new Set(
        (await db.selectFrom('endpoints').select('port').where('host_id', '=', hostId).where('port', 'is not', null).execute()).map(
          (r) => r.port,
        ),
      );
      const span = portRange.max - portRange.min + 1;
      const offset = Math.floor(Math.random() * span);
      for (let i = 0; i < span; i++) {
        const port = portRange.min + ((offset + i) % span);
        if (taken.has(port) || !(await isPortFree(port))) continue;
        try {
          await db.updateTable('endpoints').set({ port, updated_at: sql`now()` }).where('id', '=', endpointId).where('port', 'is', null).execute();
          const row = await db.selectFrom('endpoints').select('port').where('id', '=', endpointId).executeTakeFirstOrThrow();
          if (row.port !== null) return row.port;
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
        }
      }
      throw ApplicationFailure.nonRetryable(`no free port in ${portRange.min}-${portRange.max} on host ${hostId}`, 'NoFreePort');
    },

    async createRootBranchData(branchId: string): Promise<{ driver: 'btrfs' | 'copy' }> {
      return engine.createRootBranchData(branchId);
    },

    async removeBranchData(branchId: string): Promise<void> {
      await engine.stopEndpoint({ branchId });
      await engine.removeBranchData(branchId);
    },

    async startEndpoint(endpointId: string): Promise<void> {
      const { spec } = await endpointSpec(endpointId);
      await engine.startEndpoint(spec);
    },

    async stopEndpoint(input: { endpointId: string; branchId: string }): Promise<void> {
      await engine.stopEndpoint({ branchId: input.branchId });
    },

    async removeEndpointFiles(endpointId: string): Promise<void> {
      await engine.removeEndpointFiles(endpointId);
    },

    async bootstrapEndpoint(endpointId: string): Promise<{ createRole: boolean }> {
      const { row, spec } = await endpointSpec(endpointId);
      return engine.bootstrapRoles(spec, decryptSecret(row.pg_password_enc, secretKey));
    },
  };
  return withFaults(activities, faults);
}

export type HostActivities = ReturnType<typeof createHostActivities>;
