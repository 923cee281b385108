import type { EndpointMetrics } from '../engine/host';
import { planNamed, projectLimitReached } from '../domain/plans';
import { recordAudit } from '../db/queries/audit';
import { emitEvent } from '../db/queries/webhooks';
import { operationEvent, workflowResource } from '../domain/webhooks';
import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import type { Db, Database, BranchStatus, ComputeEvent } from '../db';
import type { ArchiverStats } from '../db/schema';
import { isUniqueViolation } from '../db';
import type { StorageDriver } from '../engine/storage';
import { encryptSecret, generatePassword } from '../domain/secrets';
import { resourceLimitsForCu } from '../domain/sizing';
import { failure } from '../operations/failures';
import { insertOperation, setOperationRun } from '../db/queries/operations';
import type { EndpointSpec } from '../engine/host';
import type { SeedScript } from '../engine/seeds';
import { withFaults } from './faults';
import { beginHistory, branchBases, branchHistories, insertBackup } from '../db/queries/backups';
import type { MaskingStateRow } from '../db/schema';
import type { MaskingRuleInput } from './masking';
import type { BaseInfo } from '../engine/backups';
import type { BaseRow, HistoryRow } from '../domain/restoreTarget';
import type { RetentionInput } from '../domain/retention';
import { computeDataId } from '../domain/computeData';
import type { ReplicationStatus } from '../engine/replication';

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
  /** The data dir its compute serves (see EndpointSpec.branchId). */
  branchId: string;
  hostId: string;
  /** A read replica: its data dir is its own, removed with it. */
  replica?: boolean;
}

/** Where a replica's primary serves: the branch's primary endpoint. */
export interface PrimaryPlacement {
  endpointId: string;
  branchId: string;
  port: number;
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

/** The history of a branch that was current at a moment (histories oldest first). */
function historyCurrentAt(histories: { history_id: string; started_at: Date | string; ended_at: Date | string | null }[], t: Date | string): string | undefined {
  return histories.filter((h) => new Date(h.started_at) <= new Date(t) && (!h.ended_at || new Date(t) < new Date(h.ended_at))).at(-1)?.history_id;
}

export function createCatalogActivities({ db, secretKey, faults = [] }: CatalogDeps) {
  async function recordEvent(endpointId: string, event: ComputeEvent, detail?: unknown, exec: Db = db): Promise<void> {
    const ep = await exec.selectFrom('endpoints').select(['project_id', 'compute_cu']).where('id', '=', endpointId).executeTakeFirst();
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
      .values({ project_id: ep.project_id, endpoint_id: endpointId, event, duration_s: duration, compute_cu: ep.compute_cu, detail: detail === undefined ? null : JSON.stringify(detail) })
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
        // One create per organization at a time past this point, so two cannot both take the last slot.
        await sql`SELECT pg_advisory_xact_lock(hashtext(${i.orgId}))`.execute(tx);
        const already = await tx.selectFrom('projects').select('id').where('id', '=', i.projectId).executeTakeFirst();
        if (!already) {
          const org = await tx.selectFrom('organizations').select('plan').where('id', '=', i.orgId).executeTakeFirst();
          const n = await tx.selectFrom('projects').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', i.orgId).where('status', '<>', 'deleting').executeTakeFirstOrThrow();
          const refused = projectLimitReached(planNamed(org?.plan ?? 'free'), n.n);
          if (refused) throw failure('PlanLimit', refused, { limit: 'max_projects', plan: org?.plan ?? 'free' });
        }
        await tx
          .insertInto('projects')
          .values({ id: i.projectId, org_id: i.orgId, name: i.name, region: i.region, pg_version: i.pgVersion, status: 'provisioning' })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        await insertBranchWithEndpoint(tx, { ...i, name: 'main', isPrimary: true, parentBranchId: null, passwordSealed: sealed });
      });
    },

    async markProjectReady(i: { projectId: string; branchId: string; endpointId: string; driver: StorageDriver; limitsEnforced: boolean; historyId?: string }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.updateTable('branches').set({ driver: i.driver, status: 'ready' }).where('id', '=', i.branchId).execute();
        if (i.historyId) await beginHistory(tx, { branchId: i.branchId, historyId: i.historyId, startLsn: null });
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
        .select(['id', 'branch_id', 'host_id', 'role'])
        .where('project_id', '=', projectId)
        .execute();
      return rows.map((r) => ({ endpointId: r.id, branchId: computeDataId(r), hostId: r.host_id, ...(r.role === 'replica' ? { replica: true } : {}) }));
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
        .where('role', '=', 'primary')
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
      return { spec: { endpointId, branchId: computeDataId(ep), port: ep.port, computeCu: ep.compute_cu, projectId: ep.project_id }, passwordSealed: ep.pg_password_enc, projectId: ep.project_id };
    },

    /** The data dir an endpoint's compute serves (see EndpointSpec.branchId); null once the endpoint is gone. */
    async computeOf(endpointId: string): Promise<{ endpointId: string; branchId: string } | null> {
      const ep = await db.selectFrom('endpoints').select(['id', 'branch_id', 'role']).where('id', '=', endpointId).executeTakeFirst();
      return ep ? { endpointId, branchId: computeDataId(ep) } : null;
    },

    /**
     * A replica's endpoint row beside the branch's primary: the primary's password (the standby
     * has the primary's roles), its own size (the primary's unless given) and port. Refused while
     * the branch is not ready (a reset, restore or delete owns its data). Idempotent on its id.
     */
    async createReplicaRecords(i: { projectId: string; branchId: string; replicaId: string; hostId: string; computeCu?: number }): Promise<{ computeCu: number; primary: PrimaryPlacement }> {
      return db.transaction().execute(async (tx) => {
        const branch = await tx.selectFrom('branches').select(['status', 'host_id']).where('id', '=', i.branchId).forUpdate().executeTakeFirst();
        if (!branch) throw failure('NotFound', `branch ${i.branchId} does not exist`);
        const existing = await tx.selectFrom('endpoints').select(['compute_cu']).where('id', '=', i.replicaId).executeTakeFirst();
        if (!existing && branch.status !== 'ready') throw failure('Conflict', `branch ${i.branchId} is ${branch.status}`);
        const primary = await tx
          .selectFrom('endpoints')
          .select(['id', 'port', 'pg_password_enc', 'compute_cu', 'auto_suspend_seconds'])
          .where('branch_id', '=', i.branchId)
          .where('role', '=', 'primary')
          .executeTakeFirst();
        if (!primary || primary.port === null) throw failure('NotFound', `branch ${i.branchId} has no primary endpoint with a port`);
        const computeCu = existing?.compute_cu ?? i.computeCu ?? primary.compute_cu;
        await tx
          .insertInto('endpoints')
          .values({
            id: i.replicaId,
            project_id: i.projectId,
            branch_id: i.branchId,
            host_id: branch.host_id,
            role: 'replica',
            status: 'provisioning',
            pg_password_enc: primary.pg_password_enc,
            compute_cu: computeCu,
            auto_suspend_seconds: primary.auto_suspend_seconds,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        return { computeCu, primary: { endpointId: primary.id, branchId: i.branchId, port: primary.port } };
      });
    },

    async markReplicaReady(i: { replicaId: string; port: number; limitsEnforced: boolean; replication: ReplicationStatus | null }): Promise<void> {
      await db
        .updateTable('endpoints')
        .set({
          status: 'running',
          port: i.port,
          limits_enforced: i.limitsEnforced,
          replication: i.replication ? JSON.stringify(i.replication) : null,
          last_active_at: sql`now()`,
          updated_at: sql`now()`,
        })
        .where('id', '=', i.replicaId)
        .execute();
      await recordEvent(i.replicaId, 'start');
    },

    /** Removes a replica's endpoint row (the inverse of createReplicaRecords; the end of a delete). */
    async purgeReplica(replicaId: string): Promise<void> {
      await db.deleteFrom('endpoints').where('id', '=', replicaId).where('role', '=', 'replica').execute();
    },

    async markReplicaDeleting(replicaId: string): Promise<void> {
      await db.updateTable('endpoints').set({ status: 'deleting', updated_at: sql`now()` }).where('id', '=', replicaId).where('role', '=', 'replica').execute();
    },

    /**
     * Refuses a reset or in-place restore of a branch that has replicas: checked once the branch
     * is marked, so a replica created meanwhile (its records check the branch is ready, under
     * the branch's row lock) is either seen here or refused there.
     */
    async refuseIfReplicas(branchId: string): Promise<void> {
      const r = await db.selectFrom('endpoints').select('id').where('branch_id', '=', branchId).where('role', '=', 'replica').executeTakeFirst();
      if (r) throw failure('Conflict', `branch ${branchId} has read replicas; delete its replicas first`);
    },

    /** The branch's replicas (a branch delete removes them first). */
    async branchReplicas(branchId: string): Promise<{ replicaId: string; hostId: string }[]> {
      const rows = await db.selectFrom('endpoints').select(['id', 'host_id']).where('branch_id', '=', branchId).where('role', '=', 'replica').execute();
      return rows.map((r) => ({ replicaId: r.id, hostId: r.host_id }));
    },

    /** A replica and its primary, for a lag measurement. */
    async replicaPair(replicaId: string): Promise<{ replica: EndpointSpec; primary?: PrimaryPlacement; hostId: string } | null> {
      const rep = await db.selectFrom('endpoints').selectAll().where('id', '=', replicaId).where('role', '=', 'replica').executeTakeFirst();
      if (!rep || rep.port === null) return null;
      const primary = await db.selectFrom('endpoints').select(['id', 'port']).where('branch_id', '=', rep.branch_id).where('role', '=', 'primary').executeTakeFirst();
      return {
        replica: { endpointId: rep.id, branchId: computeDataId(rep), port: rep.port, computeCu: rep.compute_cu, projectId: rep.project_id },
        ...(primary?.port != null ? { primary: { endpointId: primary.id, branchId: rep.branch_id, port: primary.port } } : {}),
        hostId: rep.host_id,
      };
    },

    async recordReplication(i: { endpointId: string; status: ReplicationStatus }): Promise<void> {
      await db.updateTable('endpoints').set({ replication: JSON.stringify(i.status) }).where('id', '=', i.endpointId).execute();
    },

    /** Where a running parent is served, for a fork through its socket. */
    async forkParent(parentBranchId: string): Promise<{ parentBranchId: string; parentEndpoint?: { endpointId: string; port: number } }> {
      const parent = await db.selectFrom('endpoints').select(['id', 'port']).where('branch_id', '=', parentBranchId).where('role', '=', 'primary').executeTakeFirst();
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

    async markBranchReady(i: {
      branchId: string;
      endpointId: string;
      port: number;
      driver: StorageDriver;
      /** Where a fork was taken; null for a branch that is no fork (an import). */
      lsn: string | null;
      limitsEnforced: boolean;
      /** The history the new data dir writes; absent from workflows started before histories. */
      historyId?: string;
      /** A branch made at a past point: commit time of the last transaction it holds. */
      parentCommitAt?: string | null;
      /** An in-place restore: `lsn` is of the branch's own history, not a fork point of its parent. */
      keepParentLsn?: boolean;
    }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx
          .updateTable('branches')
          .set({
            driver: i.driver,
            status: 'ready',
            ...(i.keepParentLsn ? {} : { parent_lsn: i.lsn }),
            ...(i.parentCommitAt !== undefined && !i.keepParentLsn ? { parent_commit_at: i.parentCommitAt } : {}),
          })
          .where('id', '=', i.branchId)
          .execute();
        if (i.historyId) await beginHistory(tx, { branchId: i.branchId, historyId: i.historyId, startLsn: i.lsn });
        await tx
          .updateTable('endpoints')
          .set({ status: 'running', port: i.port, limits_enforced: i.limitsEnforced, last_active_at: sql`now()`, updated_at: sql`now()` })
          .where('id', '=', i.endpointId)
          .execute();
      });
      await recordEvent(i.endpointId, 'start');
    },

    /** What a restore can replay of the branch: its histories, bases, and where its compute serves. */
    async restoreSources(branchId: string): Promise<{
      hostId: string;
      currentHistoryId: string | null;
      histories: HistoryRow[];
      bases: BaseRow[];
      endpoint?: { endpointId: string; port: number };
    }> {
      const branch = await db.selectFrom('branches').select(['host_id']).where('id', '=', branchId).executeTakeFirst();
      if (!branch) throw failure('NotFound', `branch ${branchId} does not exist`);
      const ep = await db.selectFrom('endpoints').select(['id', 'port', 'status']).where('branch_id', '=', branchId).where('role', '=', 'primary').executeTakeFirst();
      const histories = await branchHistories(db, branchId);
      const iso = (d: Date | string) => new Date(d).toISOString();
      return {
        hostId: branch.host_id,
        currentHistoryId: histories.find((h) => h.ended_at === null)?.history_id ?? null,
        histories: histories.map((h) => ({ historyId: h.history_id, startedAt: iso(h.started_at), endedAt: h.ended_at ? iso(h.ended_at) : null })),
        bases: (await branchBases(db, branchId)).map((b) => ({ id: b.id, historyId: b.history_id, startLsn: b.start_lsn, endLsn: b.end_lsn, takenAt: iso(b.taken_at) })),
        ...(ep?.port != null && ep.status === 'running' ? { endpoint: { endpointId: ep.id, port: ep.port } } : {}),
      };
    },

    /**
     * A base on its host, and the scheduled backup users see for it. The history is recorded too
     * when the branch began it before histories were kept (data dirs of older versions).
     */
    async recordBase(i: { base: BaseInfo; hostId: string; projectId: string; backupId: string }): Promise<void> {
      const b = i.base;
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('branch_histories')
          .values({ branch_id: b.branchId, history_id: b.historyId, start_lsn: null })
          .onConflict((oc) => oc.columns(['branch_id', 'history_id']).doNothing())
          .execute();
        await tx
          .insertInto('base_backups')
          .values({ id: b.baseId, branch_id: b.branchId, history_id: b.historyId, host_id: i.hostId, driver: b.driver, start_lsn: b.startLsn, end_lsn: b.endLsn, timeline: b.timeline, taken_at: b.takenAt, parent_base_id: b.parentBaseId ?? null })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        await insertBackup(tx, { id: i.backupId, projectId: i.projectId, branchId: b.branchId, historyId: b.historyId, name: `scheduled-${b.takenAt}`, kind: 'scheduled', lsn: b.endLsn, timeline: b.timeline, baseId: b.baseId });
      });
    },

    /**
     * The branch that keeps a restored branch's earlier state: ready, its compute suspended (it
     * starts on the first connection), the same size and password as the restored one.
     */
    async createPreservedBranchRecords(i: { projectId: string; fromBranchId: string; branchId: string; endpointId: string; name: string; parentBranchId: string | null; hostId: string }): Promise<void> {
      const from = await db
        .selectFrom('endpoints')
        .select(['pg_password_enc', 'compute_cu', 'auto_suspend_seconds'])
        .where('branch_id', '=', i.fromBranchId)
        .where('role', '=', 'primary')
        .executeTakeFirst();
      if (!from) throw failure('NotFound', `branch ${i.fromBranchId} has no endpoint`);
      const driver = (await db.selectFrom('branches').select('driver').where('id', '=', i.fromBranchId).executeTakeFirst())?.driver ?? 'copy';
      try {
        await db.transaction().execute(async (tx) => {
          await insertBranchWithEndpoint(tx, { ...i, isPrimary: false, passwordSealed: from.pg_password_enc, computeCu: from.compute_cu, autoSuspendSeconds: from.auto_suspend_seconds });
          await tx.updateTable('branches').set({ status: 'ready', driver }).where('id', '=', i.branchId).execute();
          await tx.updateTable('endpoints').set({ status: 'suspended' }).where('id', '=', i.endpointId).execute();
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw failure('Conflict', `a branch named "${i.name}" already exists`);
        throw err;
      }
    },

    /**
     * Where a branch left its parent: the parent's LSN and the parent's history current when the
     * branch was made (what retention keeps for it). A root branch has none.
     */
    async forkPoint(branchId: string): Promise<{ parentBranchId: string; lsn: string; historyId?: string }> {
      const b = await db.selectFrom('branches').select(['parent_id', 'parent_lsn', 'created_at']).where('id', '=', branchId).executeTakeFirst();
      if (!b) throw failure('NotFound', `branch ${branchId} does not exist`);
      if (!b.parent_id || !b.parent_lsn) throw failure('Invalid', `branch ${branchId} has no parent to merge into`);
      const historyId = historyCurrentAt(await branchHistories(db, b.parent_id), b.created_at);
      return { parentBranchId: b.parent_id, lsn: b.parent_lsn, ...(historyId ? { historyId } : {}) };
    },

    /** A branch's masking rules and, while masking is on, the state it was enabled with. */
    async maskingInputs(branchId: string): Promise<{ rules: MaskingRuleInput[]; state: MaskingStateRow | null }> {
      const b = await db.selectFrom('branches').select(['anonymization']).where('id', '=', branchId).executeTakeFirst();
      if (!b) throw failure('NotFound', `branch ${branchId} does not exist`);
      const rules = await db.selectFrom('anonymization_rules').selectAll().where('branch_id', '=', branchId).orderBy('created_at').orderBy('id').execute();
      return { rules: rules.map((r) => ({ schema: r.schema_name, table: r.table_name, column: r.column_name, maskingFunction: r.masking_function })), state: b.anonymization };
    },

    async recordMasking(i: { branchId: string; state: MaskingStateRow | null }): Promise<void> {
      await db.updateTable('branches').set({ anonymization: i.state === null ? null : JSON.stringify(i.state) }).where('id', '=', i.branchId).execute();
    },

    /** Branches with base backups, and for each what retention must keep (see domain/retention). */
    async retentionInputs(retentionDays: number): Promise<({ branchId: string; hostId: string } & RetentionInput)[]> {
      const windowStart = new Date(Date.now() - retentionDays * 86_400_000).toISOString();
      const iso = (d: Date | string) => new Date(d).toISOString();
      const branches = await db
        .selectFrom('branches')
        .select(['id', 'host_id'])
        .where('status', '=', 'ready')
        .where(({ exists, selectFrom }) => exists(selectFrom('base_backups').select('id').whereRef('base_backups.branch_id', '=', 'branches.id')))
        .execute();
      const out: ({ branchId: string; hostId: string } & RetentionInput)[] = [];
      for (const b of branches) {
        const histories = await branchHistories(db, b.id);
        const historyAtTime = (t: Date | string) => historyCurrentAt(histories, t);
        const named = await db.selectFrom('backups').select(['history_id', 'lsn']).where('branch_id', '=', b.id).where('kind', '=', 'named').execute();
        const children = await db.selectFrom('branches').select(['parent_lsn', 'created_at']).where('parent_id', '=', b.id).where('parent_lsn', 'is not', null).execute();
        out.push({
          branchId: b.id,
          hostId: b.host_id,
          windowStart,
          histories: histories.map((h) => ({ historyId: h.history_id, startedAt: iso(h.started_at), endedAt: h.ended_at ? iso(h.ended_at) : null })),
          bases: (await branchBases(db, b.id)).map((x) => ({ id: x.id, historyId: x.history_id, startLsn: x.start_lsn, endLsn: x.end_lsn, takenAt: iso(x.taken_at), timeline: x.timeline, parentId: x.parent_base_id })),
          namedBackups: named.map((n) => ({ historyId: n.history_id, lsn: n.lsn })),
          forkPoints: children.flatMap((c) => {
            const historyId = historyAtTime(c.created_at);
            return historyId && c.parent_lsn ? [{ historyId, lsn: c.parent_lsn }] : [];
          }),
        });
      }
      return out;
    },

    /** Forgets pruned bases (and the scheduled backups that were them) and removed histories. */
    async forgetPruned(i: { branchId: string; baseIds: string[]; historyIds: string[] }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        if (i.baseIds.length) {
          await tx.deleteFrom('backups').where('base_id', 'in', i.baseIds).where('kind', '=', 'scheduled').execute();
          await tx.deleteFrom('base_backups').where('id', 'in', i.baseIds).execute();
        }
        if (i.historyIds.length) {
          await tx.deleteFrom('base_backups').where('branch_id', '=', i.branchId).where('history_id', 'in', i.historyIds).execute();
          await tx.deleteFrom('branch_histories').where('branch_id', '=', i.branchId).where('history_id', 'in', i.historyIds).execute();
        }
      });
    },

    async recordNamedBackup(i: { backupId: string; projectId: string; branchId: string; historyId: string; name: string; lsn: string; timeline: number }): Promise<void> {
      await insertBackup(db, { id: i.backupId, projectId: i.projectId, branchId: i.branchId, historyId: i.historyId, name: i.name, kind: 'named', lsn: i.lsn, timeline: i.timeline });
    },

    async setBranchStatus(i: { branchId: string; status: BranchStatus }): Promise<void> {
      await db.updateTable('branches').set({ status: i.status }).where('id', '=', i.branchId).execute();
    },

    async branchPlacement(branchId: string): Promise<{ endpointId: string; hostId: string; parentBranchId: string | null } | null> {
      const row = await db
        .selectFrom('branches')
        .leftJoin('endpoints', (j) => j.onRef('endpoints.branch_id', '=', 'branches.id').on('endpoints.role', '=', 'primary'))
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
        if (Number(changed.numUpdatedRows) === 0) return;
        await recordEvent(i.endpointId, i.event, i.detail, tx);
        // Every way a compute goes to zero or wakes (an operation, a sweep, a client through the
        // proxy) passes here, so the event is announced here and only here.
        const ep = await tx
          .selectFrom('endpoints as e')
          .innerJoin('projects as p', 'p.id', 'e.project_id')
          .select(['p.org_id', 'e.project_id', 'e.branch_id'])
          .where('e.id', '=', i.endpointId)
          .executeTakeFirst();
        if (ep) {
          await emitEvent(tx, {
            orgId: ep.org_id,
            type: i.status === 'running' ? 'endpoint.resumed' : 'endpoint.suspended',
            data: { project_id: ep.project_id, branch_id: ep.branch_id, endpoint_id: i.endpointId, ...(i.detail && typeof i.detail === 'object' ? { detail: i.detail } : {}) },
          });
        }
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
    async findIdleEndpoints(): Promise<{ spec: EndpointSpec; branchId: string; projectId: string; orgId: string; hostId: string }[]> {
      const rows = await db
        .selectFrom('endpoints')
        .innerJoin('projects', 'projects.id', 'endpoints.project_id')
        .select(['endpoints.id', 'endpoints.branch_id', 'endpoints.role', 'endpoints.host_id', 'endpoints.port', 'endpoints.compute_cu', 'endpoints.project_id', 'projects.org_id'])
        .where('endpoints.status', '=', 'running')
        .where('endpoints.port', 'is not', null)
        .where('endpoints.auto_suspend_seconds', '>', 0)
        .where(sql<boolean>`endpoints.last_active_at < now() - make_interval(secs => endpoints.auto_suspend_seconds)`)
        .execute();
      return rows.map((r) => ({
        spec: { endpointId: r.id, branchId: computeDataId(r), port: r.port!, computeCu: r.compute_cu, projectId: r.project_id },
        branchId: r.branch_id,
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

    /** Running computes, for the archiver check (primaries) and the lag check (replicas) of the backup Schedule. */
    async runningEndpoints(): Promise<{ spec: EndpointSpec; hostId: string; replica: boolean }[]> {
      const rows = await db.selectFrom('endpoints').selectAll().where('status', '=', 'running').where('port', 'is not', null).execute();
      return rows.map((ep) => ({
        spec: { endpointId: ep.id, branchId: computeDataId(ep), port: ep.port!, computeCu: ep.compute_cu, projectId: ep.project_id },
        hostId: ep.host_id,
        replica: ep.role === 'replica',
      }));
    },

    /** One metrics row per sampled endpoint; rows older than the history keeps are pruned. */
    async recordMetricsSnapshots(i: { rows: { projectId: string; endpointId: string; m: EndpointMetrics }[]; keepHours: number }): Promise<void> {
      if (i.rows.length) {
        await db
          .insertInto('metrics_snapshots')
          .values(
            i.rows.map((r) => ({
              project_id: r.projectId,
              endpoint_id: r.endpointId,
              connections_total: r.m.connections,
              cache_hit_ratio: r.m.cacheHitRatio,
              storage_logical_bytes: r.m.logicalBytes,
              data_dir_bytes: r.m.dataDirBytes,
              cpu_seconds: r.m.cpuSeconds,
              memory_bytes: r.m.memoryBytes,
            })),
          )
          .execute();
      }
      await db.deleteFrom('metrics_snapshots').where('snapshot_at', '<', sql<Date>`now() - make_interval(hours => ${i.keepHours})`).execute();
    },

    async recordArchiverStatus(i: { endpointId: string; stats: ArchiverStats }): Promise<void> {
      await db.updateTable('endpoints').set({ wal_archive: JSON.stringify(i.stats) }).where('id', '=', i.endpointId).execute();
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

    /** Ready branches whose current history has no base taken within the interval (or none at all). */
    async findBranchesNeedingBase(intervalHours: number): Promise<{ branchId: string; projectId: string; orgId: string; hostId: string }[]> {
      const rows = await db
        .selectFrom('branches')
        .innerJoin('projects', 'projects.id', 'branches.project_id')
        .select(['branches.id', 'branches.project_id', 'projects.org_id', 'branches.host_id'])
        .where('branches.status', '=', 'ready')
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('base_backups')
                .innerJoin('branch_histories', (j) => j.onRef('branch_histories.branch_id', '=', 'base_backups.branch_id').onRef('branch_histories.history_id', '=', 'base_backups.history_id'))
                .select('base_backups.id')
                .whereRef('base_backups.branch_id', '=', 'branches.id')
                .where('branch_histories.ended_at', 'is', null)
                .where('base_backups.taken_at', '>', sql<Date>`now() - make_interval(secs => ${intervalHours * 3600})`),
            ),
          ),
        )
        .execute();
      return rows.map((r) => ({ branchId: r.id, projectId: r.project_id, orgId: r.org_id, hostId: r.host_id }));
    },

    /** Creates the operation row for work that no API request started (schedules). */
    async openOperation(i: { operationId: string; orgId: string; projectId: string; kind: string; workflowId: string }): Promise<void> {
      // The platform's own actions (auto-suspend, TTL expiry, backups, autoscaling) are audited
      // with the row that starts them.
      await db.transaction().execute(async (tx) => {
        await insertOperation(tx, { id: i.operationId, orgId: i.orgId, projectId: i.projectId, kind: i.kind, workflowId: i.workflowId });
        await recordAudit(tx, {
          orgId: i.orgId,
          actor: 'platform',
          action: i.kind,
          target: Object.values(workflowResource(i.workflowId)).pop() ?? i.projectId,
          outcome: 'started',
          details: { operation_id: i.operationId, project_id: i.projectId, workflow_id: i.workflowId },
        });
      });
    },

    async finishOperation(o: OperationOutcome): Promise<void> {
      // The event the end announces goes to the outbox in the same transaction (at most once:
      // only the update that moves the row out of running emits it).
      await db.transaction().execute(async (tx) => {
        const op = await tx
          .updateTable('operations')
          .set({
            status: o.status,
            step: o.step ?? null,
            error: o.error ? JSON.stringify(o.error) : null,
            result: o.result === undefined ? null : JSON.stringify(o.result),
            updated_at: sql`now()`,
          })
          .where('id', '=', o.operationId)
          .returning(['org_id', 'project_id', 'kind', 'workflow_id', 'detail', sql<string>`(SELECT status FROM operations p WHERE p.id = operations.id)`.as('before')])
          .executeTakeFirst();
        if (!op || op.before !== 'running') return;
        const detail = (op.detail ?? null) as Record<string, unknown> | null;
        const type = operationEvent(op.kind, o.status, detail, o.result);
        if (!type) return;
        await emitEvent(tx, {
          orgId: op.org_id,
          type,
          data: {
            operation_id: o.operationId,
            operation: op.kind,
            project_id: op.project_id,
            ...workflowResource(op.workflow_id),
            ...(o.error ? { error: o.error } : {}),
          },
        });
      });
    },
  };
  return withFaults(activities, faults);
}

export type CatalogActivities = ReturnType<typeof createCatalogActivities>;
