import { sql } from 'kysely';
import type { Db } from '../db';
import type { StorageDriver } from '../engine/storage';
import { encryptSecret, generatePassword } from '../domain/secrets';
import { withFaults } from './faults';

export interface ProjectRecordsInput {
  projectId: string;
  orgId: string;
  name: string;
  region: string;
  branchId: string;
  endpointId: string;
  hostId: string;
}

export interface EndpointPlacement {
  endpointId: string;
  branchId: string;
  hostId: string;
}

export interface OperationOutcome {
  operationId: string;
  status: 'succeeded' | 'failed';
  step?: string;
  error?: { type?: string; message: string };
  result?: unknown;
}

export interface CatalogDeps {
  db: Db;
  secretKey: Buffer;
  faults?: readonly string[];
}

/** Control-plane catalog work. Every activity is idempotent: Temporal may run it twice. */
export function createCatalogActivities({ db, secretKey, faults = [] }: CatalogDeps) {
  const activities = {
    async createProjectRecords(i: ProjectRecordsInput): Promise<void> {
      // The password is born here and sealed at once, so it never enters workflow history.
      const sealed = encryptSecret(generatePassword(), secretKey);
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('projects')
          .values({ id: i.projectId, org_id: i.orgId, name: i.name, region: i.region, status: 'provisioning' })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        await tx
          .insertInto('branches')
          .values({ id: i.branchId, project_id: i.projectId, name: 'main', is_primary: true, driver: 'pending', host_id: i.hostId })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        await tx
          .insertInto('endpoints')
          .values({
            id: i.endpointId,
            project_id: i.projectId,
            branch_id: i.branchId,
            host_id: i.hostId,
            status: 'provisioning',
            pg_password_enc: sealed,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
      });
    },

    async markProjectReady(i: { projectId: string; branchId: string; endpointId: string; driver: StorageDriver }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.updateTable('branches').set({ driver: i.driver }).where('id', '=', i.branchId).execute();
        await tx.updateTable('endpoints').set({ status: 'running', updated_at: sql`now()` }).where('id', '=', i.endpointId).execute();
        await tx.updateTable('projects').set({ status: 'ready', updated_at: sql`now()` }).where('id', '=', i.projectId).execute();
      });
    },

    /** Marks the project as going away and tells the workflow which endpoints to stop where. */
    async markProjectDeleting(projectId: string): Promise<EndpointPlacement[]> {
      await db.updateTable('projects').set({ status: 'deleting', updated_at: sql`now()` }).where('id', '=', projectId).execute();
      await db.updateTable('endpoints').set({ status: 'deleting', updated_at: sql`now()` }).where('project_id', '=', projectId).execute();
      const rows = await db
        .selectFrom('endpoints')
        .select(['id', 'branch_id', 'host_id'])
        .where('project_id', '=', projectId)
        .execute();
      return rows.map((r) => ({ endpointId: r.id, branchId: r.branch_id, hostId: r.host_id }));
    },

    async listProjectBranches(projectId: string): Promise<{ branchId: string; hostId: string }[]> {
      const rows = await db.selectFrom('branches').select(['id', 'host_id']).where('project_id', '=', projectId).execute();
      return rows.map((r) => ({ branchId: r.id, hostId: r.host_id }));
    },

    /** Removes every catalog row of the project (branches and endpoints cascade). */
    async purgeProject(projectId: string): Promise<void> {
      await db.deleteFrom('projects').where('id', '=', projectId).execute();
    },

    async finishOperation(o: OperationOutcome): Promise<void> {
      await db
        .updateTable('operations')
        .set({
          status: o.status,
          step: o.step ?? null,
          error: o.error ? JSON.stringify(o.error) : null,
          result: o.result === undefined ? null : JSON.stringify(o.result),
          updated_at: sql`now()`,
        })
        .where('id', '=', o.operationId)
        .execute();
    },
  };
  return withFaults(activities, faults);
}

export type CatalogActivities = ReturnType<typeof createCatalogActivities>;
