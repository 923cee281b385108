import { sql } from 'kysely';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import type { Db } from '../db';
import { isUniqueViolation } from '../db';
import type { HostEngine } from '../engine/host';
import { isPortFree } from '../engine/ports';
import { decryptSecret } from '../domain/secrets';
import { USER_ROLE } from '../engine/host';
import { runSeeds, SeedError, SeedResult } from '../engine/seeds';
import { resourceLimitsForCu } from '../domain/sizing';
import { withFaults } from './faults';

export interface HostDeps {
  db: Db;
  engine: HostEngine;
  hostId: string;
  secretKey: Buffer;
  portRange: { min: number; max: number };
  faults?: readonly string[];
  logger?: Logger;
}

async function readEndpointSpec(db: Db, endpointId: string) {
  const ep = await db.selectFrom('endpoints').selectAll().where('id', '=', endpointId).executeTakeFirst();
  if (!ep) throw ApplicationFailure.nonRetryable(`endpoint ${endpointId} is not in the catalog`, 'NotFound');
  if (ep.port === null) throw ApplicationFailure.nonRetryable(`endpoint ${endpointId} has no port`, 'NoPort');
  return { row: ep, spec: { endpointId, branchId: ep.branch_id, port: ep.port, computeCu: ep.compute_cu } };
}

/** Engine work on the machine that holds the data. Idempotent, like every activity. */
export function createHostActivities({ db, engine, hostId, secretKey, portRange, faults = [], logger }: HostDeps) {
  const endpointSpec = (endpointId: string) => readEndpointSpec(db, endpointId);

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

    /**
     * Returns once the compute accepts connections. Its move into its cgroups (a cgroup v1 move
     * waits ~13 ms for an RCU grace period) finishes meanwhile, off the path of the branch
     * creation or wake that waits for this; the engine keeps the branch locked until then, so a
     * stop or resize cannot overtake it.
     */
    async startEndpoint(endpointId: string): Promise<{ port: number }> {
      const { spec } = await endpointSpec(endpointId);
      const { limited } = await engine.wakeEndpoint(spec);
      limited
        .then(({ limitsEnforced }) => db.updateTable('endpoints').set({ limits_enforced: limitsEnforced }).where('id', '=', endpointId).execute())
        .catch((err) => logger?.error({ err, endpointId }, 'could not put the compute under its limits'));
      return { port: spec.port };
    },

    async stopEndpoint(input: { endpointId: string; branchId: string }): Promise<void> {
      await engine.stopEndpoint(input);
    },

    /** Applies the catalog's compute_cu to the running compute. */
    async resizeEndpoint(endpointId: string): Promise<{ limitsEnforced: boolean }> {
      const { spec } = await endpointSpec(endpointId);
      const r = await engine.resizeEndpoint(spec);
      await db.updateTable('endpoints').set({ limits_enforced: r.limitsEnforced }).where('id', '=', endpointId).execute();
      return r;
    },

    /** CPU used since the previous sample, as a fraction of the compute's vCPUs (autoscaling). */
    async sampleCpu(endpointId: string): Promise<{ utilization: number | null; computeCu: number }> {
      const { row } = await endpointSpec(endpointId);
      const used = await engine.cpuUsageSeconds(endpointId);
      const now = new Date();
      await db.updateTable('endpoints').set({ cpu_seconds: used ?? null, cpu_sampled_at: now }).where('id', '=', endpointId).execute();
      if (used === undefined || row.cpu_seconds === null || row.cpu_sampled_at === null) return { utilization: null, computeCu: row.compute_cu };
      const elapsed = (now.getTime() - new Date(row.cpu_sampled_at).getTime()) / 1000;
      if (elapsed <= 0 || used < row.cpu_seconds) return { utilization: null, computeCu: row.compute_cu };
      return { utilization: (used - row.cpu_seconds) / elapsed / resourceLimitsForCu(row.compute_cu).vcpu, computeCu: row.compute_cu };
    },

    async removeEndpointFiles(endpointId: string): Promise<void> {
      await engine.removeEndpointFiles(endpointId);
    },

    /** Forks the parent's data (running or not) into the child's data dir. */
    async forkBranchData(i: { parentBranchId: string; childBranchId: string }): Promise<{ driver: 'btrfs' | 'copy'; lsn: string }> {
      const parent = await db.selectFrom('endpoints').select(['id', 'port']).where('branch_id', '=', i.parentBranchId).executeTakeFirst();
      return engine.forkBranchData(i.parentBranchId, i.childBranchId, parent?.port ? { endpointId: parent.id, port: parent.port } : undefined);
    },

    /**
     * Port, fork and start in one activity: each separate step would cost a round trip through
     * Temporal, which on a fork of a few tens of milliseconds is most of the time. Each part is
     * idempotent, so a retry resumes where the last attempt stopped.
     */
    async provisionBranchCompute(i: { endpointId: string; parentBranchId: string; childBranchId: string }) {
      const port = await activities.reservePort(i.endpointId);
      const { driver, lsn } = await activities.forkBranchData({ parentBranchId: i.parentBranchId, childBranchId: i.childBranchId });
      await activities.startEndpoint(i.endpointId);
      return { port, driver, lsn };
    },

    /** Enabled seeds of the endpoint's project, in position order, as the user's role. */
    async runSeeds(endpointId: string): Promise<SeedResult[]> {
      const { row, spec } = await endpointSpec(endpointId);
      const seeds = await db
        .selectFrom('seeds')
        .select(['id', 'name', 'sql'])
        .where('project_id', '=', row.project_id)
        .where('enabled', '=', true)
        .orderBy('position')
        .execute();
      try {
        return await runSeeds({ port: spec.port, user: USER_ROLE, password: decryptSecret(row.pg_password_enc, secretKey) }, seeds);
      } catch (err) {
        if (err instanceof SeedError) {
          throw ApplicationFailure.create({
            message: err.message,
            type: 'SeedFailed',
            nonRetryable: true,
            details: [{ seed_id: err.seed.id, seed_name: err.seed.name, error: err.pgError, seeds: err.results }],
          });
        }
        throw err;
      }
    },

    /** Whether any user session is open on the compute: an idle sweep must not cut one off. */
    async endpointHasClients(endpointId: string): Promise<boolean> {
      const { spec } = await endpointSpec(endpointId);
      if (!(await engine.endpointRunning(spec))) return false;
      return engine.hasClientSessions(spec);
    },

    /** Reset keeps the old data aside until the new fork is up, so a failed reset can restore it. */
    async setBranchDataAside(branchId: string): Promise<void> {
      await engine.setBranchDataAside(branchId);
    },

    async restoreBranchDataAside(branchId: string): Promise<void> {
      await engine.restoreBranchDataAside(branchId);
    },

    async dropBranchDataAside(branchId: string): Promise<void> {
      await engine.dropBranchDataAside(branchId);
    },

    async bootstrapEndpoint(endpointId: string): Promise<{ createRole: boolean }> {
      const { row, spec } = await endpointSpec(endpointId);
      return engine.bootstrapRoles(spec, decryptSecret(row.pg_password_enc, secretKey));
    },
  };
  return withFaults(activities, faults);
}

export type HostActivities = ReturnType<typeof createHostActivities>;
