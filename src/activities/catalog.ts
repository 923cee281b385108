import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import type { Db, Database, BranchStatus, ComputeEvent } from '../db';
import { isUniqueViolation } from '../db';
import type { StorageDriver } from '../engine/storage';
import { encryptSecret, generatePassword } from '../domain/secrets';
import { resourceLimitsForCu } from '../domain/sizing';
import { failure } from '../operations/failures';
import { insertOperation, setOperationRun } from '../db/queries/operations';
import type { EndpointSpec } from '../engine/host';
import type { SeedScript } from '../engine/seeds';
import { withFaults } from './faults';

export interface ProjectRecordsInput {
  projectId: string;
  orgId: string;
  name: string;
  region: string;
  /** The Postgres major of the project; every branch keeps it. */
  pgVersion: number;
  branchId: string;
  endpointId: string;
  hostId: string;
}

export interface BranchRecordsInput {
  projectId: string;
  branchId: string;
  endpointId: string;
  parentBranchId: string;
  name: string;
  hostId: string;
}

/** The records of a branch an import makes: no parent, its own fresh cluster. */
export interface ImportBranchRecordsInput {
  projectId: string;
  branchId: string;
  endpointId: string;
  name: string;
  hostId: string;
  /** postgresql://user@host:port/db: never the password. */
  sourceRedacted: string;
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
  async function recordEvent(endpointId: string, event: ComputeEvent, detail?: unknown, exec: Db = db): Promise<void> {
    const ep = await exec.selectFrom('endpoints').select('project_id').where('id', '=', endpointId).executeTakeFirst();
    if (!ep) return;
    let duration: number | null = null;
    if (event === 'suspend') {
      const since = await exec
        .selectFrom('compute_events')
        .select(sql<number>`extract(epoch from now() - max(at))::float8`.as('s'))
        .where('endpoint_id', '=', endpointId)
        .where('event', 'in', ['start', 'resume'])
        .executeTakeFirst();
      duration = since?.s ?? null;
    }
    await exec
      .insertInto('compute_events')
      .values({ project_id: ep.project_id, endpoint_id: endpointId, event, duration_s: duration, detail: detail === undefined ? null : JSON.stringify(detail) })
      .execute();
  }

  /** A branch and its endpoint, both provisioning; idempotent on their ids. */
  async function insertBranchWithEndpoint(
    tx: Transaction<Database>,
    b: {
      projectId: string;
      branchId: string;
      endpointId: string;
      hostId: string;
      name: string;
      isPrimary: boolean;
      parentBranchId: string | null;
      passwordSealed: string;
      computeCu?: number;
      autoSuspendSeconds?: number;
      importSource?: string;
    },
  ): Promise<void> {
    await tx
      .insertInto('branches')
      .values({
        id: b.branchId,
        project_id: b.projectId,
        name: b.name,
        is_primary: b.isPrimary,
        parent_id: b.parentBranchId,
        driver: 'pending',
        host_id: b.hostId,
        status: 'provisioning',
        import_source: b.importSource ?? null,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    await tx
      .insertInto('endpoints')
      .values({
        id: b.endpointId,
        project_id: b.projectId,
        branch_id: b.branchId,
        host_id: b.hostId,
        status: 'provisioning',
        pg_password_enc: b.passwordSealed,
        compute_cu: b.computeCu,
        auto_suspend_seconds: b.autoSuspendSeconds,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  const activities = {
    async createProjectRecords(i: ProjectRecordsInput): Promise<void> {
      // The password is born here and sealed at once, so it never enters workflow history.
      const sealed = encryptSecret(generatePassword(), secretKey);
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('projects')
          .values({ id: i.projectId, org_id: i.orgId, name: i.name, region: i.region, pg_version: i.pgVersion, status: 'provisioning' })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        await insertBranchWithEndpoint(tx, { ...i, name: 'main', isPrimary: true, parentBranchId: null, passwordSealed: sealed });
      });
    },

    async markProjectReady(i: { projectId: string; branchId: string; endpointId: string; driver: StorageDriver; limitsEnforced: boolean }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.updateTable('branches').set({ driver: i.driver, status: 'ready' }).where('id', '=', i.branchId).execute();
        await tx
          .updateTable('endpoints')
          .set({ status: 'running', limits_enforced: i.limitsEnforced, last_active_at: sql`now()`, updated_at: sql`now()` })
          .where('id', '=', i.endpointId)
          .execute();
        await tx.updateTable('projects').set({ status: 'ready', updated_at: sql`now()` }).where('id', '=', i.projectId).execute();
      });
      await recordEvent(i.endpointId, 'start');
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

    /** The child shares its parent's data, hence its roles: it inherits the sealed password too. */
    async createBranchRecords(i: BranchRecordsInput): Promise<{ seedCount: number; computeCu: number; passwordSealed: string; parentEndpoint?: { endpointId: string; port: number } }> {
      const parent = await db
        .selectFrom('endpoints')
        .select(['id', 'port', 'pg_password_enc', 'compute_cu', 'auto_suspend_seconds'])
        .where('branch_id', '=', i.parentBranchId)
        .executeTakeFirst();
      if (!parent) throw failure('NotFound', `parent branch ${i.parentBranchId} has no endpoint`);
      try {
        await db.transaction().execute((tx) =>
          insertBranchWithEndpoint(tx, {
            ...i,
            isPrimary: false,
            passwordSealed: parent.pg_password_enc,
            computeCu: parent.compute_cu,
            autoSuspendSeconds: parent.auto_suspend_seconds,
          }),
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw failure('Conflict', `a branch named "${i.name}" already exists`);
        throw err;
      }
      return {
        seedCount: await activities.enabledSeedCount(i.projectId),
        computeCu: parent.compute_cu,
        passwordSealed: parent.pg_password_enc,
        ...(parent.port !== null ? { parentEndpoint: { endpointId: parent.id, port: parent.port } } : {}),
      };
    },

    /**
     * An imported branch's rows. It gets a fresh cluster, not a fork, but the project's password,
     * size and auto-suspend: its user logs in as on every other branch of the project.
     */
    async createImportBranchRecords(i: ImportBranchRecordsInput): Promise<{ passwordSealed: string; computeCu: number }> {
      const primary = await db
        .selectFrom('endpoints')
        .innerJoin('branches', 'branches.id', 'endpoints.branch_id')
        .select(['endpoints.pg_password_enc', 'endpoints.compute_cu', 'endpoints.auto_suspend_seconds'])
        .where('branches.project_id', '=', i.projectId)
        .where('branches.is_primary', '=', true)
        .executeTakeFirst();
      if (!primary) throw failure('NotFound', `project ${i.projectId} has no primary branch`);
      try {
        await db.transaction().execute((tx) =>
          insertBranchWithEndpoint(tx, {
            ...i,
            isPrimary: false,
            parentBranchId: null,
            passwordSealed: primary.pg_password_enc,
            computeCu: primary.compute_cu,
            autoSuspendSeconds: primary.auto_suspend_seconds,
            importSource: i.sourceRedacted,
          }),
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw failure('Conflict', `a branch named "${i.name}" already exists`);
        throw err;
      }
      return { passwordSealed: primary.pg_password_enc, computeCu: primary.compute_cu };
    },

    /** What a host needs to run an endpoint's compute, and the sealed password it logs in with. */
    async endpointSpec(endpointId: string): Promise<{ spec: EndpointSpec; passwordSealed: string; projectId: string }> {
      const ep = await db.selectFrom('endpoints').selectAll().where('id', '=', endpointId).executeTakeFirst();
      if (!ep) throw failure('NotFound', `endpoint ${endpointId} is not in the catalog`);
      if (ep.port === null) throw failure('NoPort', `endpoint ${endpointId} has no port`);
      return { spec: { endpointId, branchId: ep.branch_id, port: ep.port, computeCu: ep.compute_cu, projectId: ep.project_id }, passwordSealed: ep.pg_password_enc, projectId: ep.project_id };
    },

    /** Where a running parent is served, for a fork through its socket. */
    async forkParent(parentBranchId: string): Promise<{ parentBranchId: string; parentEndpoint?: { endpointId: string; port: number } }> {
      const parent = await db.selectFrom('endpoints').select(['id', 'port']).where('branch_id', '=', parentBranchId).executeTakeFirst();
      return { parentBranchId, ...(parent?.port != null ? { parentEndpoint: { endpointId: parent.id, port: parent.port } } : {}) };
    },

    /** The port the host gave the endpoint; the unique (host_id, port) index is the backstop. */
    async recordEndpointPort(i: { endpointId: string; port: number }): Promise<void> {
      await db.updateTable('endpoints').set({ port: i.port, updated_at: sql`now()` }).where('id', '=', i.endpointId).execute();
    },

    async recordLimits(i: { endpointId: string; limitsEnforced: boolean }): Promise<void> {
      await db.updateTable('endpoints').set({ limits_enforced: i.limitsEnforced }).where('id', '=', i.endpointId).execute();
    },

    /** The project's enabled seeds in the order they run (without their SQL: see seedScript). */
    async enabledSeeds(projectId: string): Promise<{ id: string; name: string }[]> {
      return db.selectFrom('seeds').select(['id', 'name']).where('project_id', '=', projectId).where('enabled', '=', true).orderBy('position').execute();
    },

    /** One seed with its SQL, read just before it runs. */
    async seedScript(seedId: string): Promise<SeedScript> {
      const seed = await db.selectFrom('seeds').select(['id', 'name', 'sql']).where('id', '=', seedId).executeTakeFirst();
      if (!seed) throw failure('NotFound', `seed ${seedId} was deleted while a branch was being seeded`);
      return seed;
    },

    /** Stores a CPU sample and answers the utilization since the previous one (autoscaling). */
    async recordCpuSample(i: { endpointId: string; cpuSeconds: number | null }): Promise<{ utilization: number | null; computeCu: number }> {
      const row = await db.selectFrom('endpoints').select(['compute_cu', 'cpu_seconds', 'cpu_sampled_at']).where('id', '=', i.endpointId).executeTakeFirst();
      if (!row) return { utilization: null, computeCu: 0 };
      const now = new Date();
      await db.updateTable('endpoints').set({ cpu_seconds: i.cpuSeconds, cpu_sampled_at: now }).where('id', '=', i.endpointId).execute();
      if (i.cpuSeconds === null || row.cpu_seconds === null || row.cpu_sampled_at === null) return { utilization: null, computeCu: row.compute_cu };
      const elapsed = (now.getTime() - new Date(row.cpu_sampled_at).getTime()) / 1000;
      if (elapsed <= 0 || i.cpuSeconds < row.cpu_seconds) return { utilization: null, computeCu: row.compute_cu };
      return { utilization: (i.cpuSeconds - row.cpu_seconds) / elapsed / resourceLimitsForCu(row.compute_cu).vcpu, computeCu: row.compute_cu };
    },

    /** The run an operation belongs to, recorded by whoever started it (a sweep, here). */
    async attachOperationRun(i: { operationId: string; runId: string }): Promise<void> {
      await setOperationRun(db, i.operationId, i.runId);
    },

    /** Lets a workflow skip the seed step (a host round trip) when there is nothing to run. */
    async enabledSeedCount(projectId: string): Promise<number> {
      const r = await db
        .selectFrom('seeds')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('project_id', '=', projectId)
        .where('enabled', '=', true)
        .executeTakeFirstOrThrow();
      return r.n;
    },

    /** `lsn` is where a fork was taken; null for a branch that is no fork (an import). */
    async markBranchReady(i: { branchId: string; endpointId: string; port: number; driver: StorageDriver; lsn: string | null; limitsEnforced: boolean }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.updateTable('branches').set({ driver: i.driver, parent_lsn: i.lsn, status: 'ready' }).where('id', '=', i.branchId).execute();
        await tx
          .updateTable('endpoints')
          .set({ status: 'running', port: i.port, limits_enforced: i.limitsEnforced, last_active_at: sql`now()`, updated_at: sql`now()` })
          .where('id', '=', i.endpointId)
          .execute();
      });
      await recordEvent(i.endpointId, 'start');
    },

    async setBranchStatus(i: { branchId: string; status: BranchStatus }): Promise<void> {
      await db.updateTable('branches').set({ status: i.status }).where('id', '=', i.branchId).execute();
    },

    async branchPlacement(branchId: string): Promise<{ endpointId: string; hostId: string; parentBranchId: string | null } | null> {
      const row = await db
        .selectFrom('branches')
        .leftJoin('endpoints', 'endpoints.branch_id', 'branches.id')
        .select(['endpoints.id as endpoint_id', 'branches.host_id', 'branches.parent_id'])
        .where('branches.id', '=', branchId)
        .executeTakeFirst();
      if (!row || !row.endpoint_id) return null;
      return { endpointId: row.endpoint_id, hostId: row.host_id, parentBranchId: row.parent_id };
    },

    /** Removes the branch and its endpoint from the catalog. */
    async purgeBranch(branchId: string): Promise<void> {
      await db.deleteFrom('branches').where('id', '=', branchId).execute();
    },

    /** Sets an endpoint's state and records it in compute history (suspend carries the running time). */
    /**
     * Records a suspend or resume once: only a change of state is an event, so a resume that finds
     * the compute already running (a second wake, a retried activity) adds nothing to history.
     */
    async setEndpointState(i: { endpointId: string; status: 'running' | 'suspended'; event: ComputeEvent; detail?: unknown }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const changed = await tx
          .updateTable('endpoints')
          .set({ status: i.status, updated_at: sql`now()`, ...(i.status === 'running' ? { last_active_at: sql`now()` } : {}) })
          .where('id', '=', i.endpointId)
          .where('status', '<>', i.status)
          .executeTakeFirst();
        if (Number(changed.numUpdatedRows) > 0) await recordEvent(i.endpointId, i.event, i.detail, tx);
      });
    },

    async recordComputeEvent(i: { endpointId: string; event: ComputeEvent; detail?: unknown }): Promise<void> {
      await recordEvent(i.endpointId, i.event, i.detail);
    },

    async setEndpointSize(i: { endpointId: string; computeCu: number; detail?: unknown }): Promise<void> {
      await db.updateTable('endpoints').set({ compute_cu: i.computeCu, updated_at: sql`now()` }).where('id', '=', i.endpointId).execute();
      await recordEvent(i.endpointId, 'resize', i.detail);
    },

    /** Running endpoints whose last client left more than auto_suspend_seconds ago. */
    async findIdleEndpoints(): Promise<{ spec: EndpointSpec; projectId: string; orgId: string; hostId: string }[]> {
      const rows = await db
        .selectFrom('endpoints')
        .innerJoin('projects', 'projects.id', 'endpoints.project_id')
        .select(['endpoints.id', 'endpoints.branch_id', 'endpoints.host_id', 'endpoints.port', 'endpoints.compute_cu', 'endpoints.project_id', 'projects.org_id'])
        .where('endpoints.status', '=', 'running')
        .where('endpoints.port', 'is not', null)
        .where('endpoints.auto_suspend_seconds', '>', 0)
        .where(sql<boolean>`endpoints.last_active_at < now() - make_interval(secs => endpoints.auto_suspend_seconds)`)
        .execute();
      return rows.map((r) => ({
        spec: { endpointId: r.id, branchId: r.branch_id, port: r.port!, computeCu: r.compute_cu, projectId: r.project_id },
        projectId: r.project_id,
        orgId: r.org_id,
        hostId: r.host_id,
      }));
    },

    async findAutoscaledEndpoints(): Promise<{ endpointId: string; branchId: string; projectId: string; orgId: string; hostId: string; minCu: number; maxCu: number }[]> {
      const rows = await db
        .selectFrom('endpoints')
        .innerJoin('projects', 'projects.id', 'endpoints.project_id')
        .select(['endpoints.id', 'endpoints.branch_id', 'endpoints.project_id', 'projects.org_id', 'endpoints.host_id', 'endpoints.min_cu', 'endpoints.max_cu'])
        .where('endpoints.status', '=', 'running')
        .where('endpoints.min_cu', 'is not', null)
        .where('endpoints.max_cu', 'is not', null)
        .execute();
      return rows.map((r) => ({
        endpointId: r.id,
        branchId: r.branch_id,
        projectId: r.project_id,
        orgId: r.org_id,
        hostId: r.host_id,
        minCu: r.min_cu!,
        maxCu: r.max_cu!,
      }));
    },

    async touchEndpoint(endpointId: string): Promise<void> {
      await db.updateTable('endpoints').set({ last_active_at: sql`now()` }).where('id', '=', endpointId).execute();
    },

    async findExpiredBranches(): Promise<{ branchId: string; projectId: string; orgId: string }[]> {
      const rows = await db
        .selectFrom('branches')
        .innerJoin('projects', 'projects.id', 'branches.project_id')
        .select(['branches.id', 'branches.project_id', 'projects.org_id'])
        .where('branches.protected', '=', false)
        .where('branches.is_primary', '=', false)
        .where('branches.status', '=', 'ready')
        .where('branches.expires_at', '<', sql<Date>`now()`)
        // A parent outlives its TTL until its children are gone, as the API's delete requires.
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom('branches as child').select('child.id').whereRef('child.parent_id', '=', 'branches.id'))),
        )
        .execute();
      return rows.map((r) => ({ branchId: r.id, projectId: r.project_id, orgId: r.org_id }));
    },

    /** Creates the operation row for work that no API request started (schedules). */
    async openOperation(i: { operationId: string; orgId: string; projectId: string; kind: string; workflowId: string }): Promise<void> {
      await insertOperation(db, { id: i.operationId, orgId: i.orgId, projectId: i.projectId, kind: i.kind, workflowId: i.workflowId });
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
