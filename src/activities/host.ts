import type { EndpointMetrics } from '../engine/host';
import { Context, CancelledFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { EndpointSpec, HostEngine } from '../engine/host';
import type { StorageDriver } from '../engine/storage';
import type { ForkResult } from '../engine/branchData';
import { NoFreePortError } from '../engine/portRegistry';
import { runSeeds, SeedError, SeedResult, SeedScript } from '../engine/seeds';
import { decryptSecret } from '../domain/secrets';
import { parseSourceDsn, scrubSecret, SourceDsn } from '../domain/sourceDsn';
import { ImportError, ImportResult } from '../engine/imports';
import type { SourceInspection } from '../engine/sourceInspect';
import { USER_ROLE } from '../domain/roles';
import { failure } from '../operations/failures';
import { withFaults } from './faults';
import { HistoryGapError, type BaseInfo, type HistoryEnd } from '../engine/backups';
import { baseForLsn, baseForTime, BaseRow, HistoryRow, historyAt, lsnForTime, parseTimestampMicros } from '../domain/restoreTarget';
import { compareLsn, normalizeLsn } from '../domain/lsn';
import { archiverStats } from '../engine/walArchive';
import { Client } from 'pg';
import { applyMasking, removeMasking, type MaskingApplied, type MaskingRuleInput } from './masking';
import { withSystemClient } from '../engine/cluster';
import { replayStatement, topStatements, type ReplayedQuery, type ReplayOptions, type TopStatement } from './replay';
import { schemaDiff, type DiffDatabase, type DiffStatement } from '../engine/schemaDiff';
import { statementTrees } from '../domain/sql';
import { classifyStatement, planMerge, withEngineFlags, type ClassifiedStatement, type ClassifyContext, type SchemaMergePlan } from '../domain/schemaMerge';

/** A compute on this host, by its private socket. */
export interface ComputeSocket {
  endpointId: string;
  port: number;
}

/** The SQLSTATE of a database error, also when a client library wrapped it (error.cause). */
function sqlstateOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  }
  return undefined;
}

/** How long a merge waits for a lock on the parent, and for any one statement. */
const MERGE_LOCK_TIMEOUT_MS = 10_000;
const MERGE_STATEMENT_TIMEOUT_MS = 600_000;

/** The parent's column types and table sizes, which decide how hazardous a statement is. */
async function mergeContext(d: DiffDatabase): Promise<ClassifyContext> {
  return withSystemClient(
    d.socketDir,
    d.port,
    async (c) => {
      const cols = await c.query<{ k: string; t: string }>(
        `SELECT n.nspname || '.' || c.relname || '.' || a.attname AS k, format_type(a.atttypid, a.atttypmod) AS t
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
      );
      const sizes = await c.query<{ k: string; b: string }>(
        `SELECT n.nspname || '.' || c.relname AS k, pg_total_relation_size(c.oid)::text AS b
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
      );
      return { columnTypes: Object.fromEntries(cols.rows.map((r) => [r.k, r.t])), tableBytes: Object.fromEntries(sizes.rows.map((r) => [r.k, Number(r.b)])) };
    },
    d.database,
  );
}

export interface HostDeps {
  engine: HostEngine;
  hostId: string;
  /** Opens the sealed database passwords that workflows carry. */
  secretKey: Buffer;
  faults?: readonly string[];
  logger?: Logger;
}

/** Where a fork's parent is serving, when it is: a running parent is forked through its socket. */
export interface ForkParent {
  parentBranchId: string;
  parentEndpoint?: { endpointId: string; port: number };
}

/** The heartbeat details of long host work. */
export interface HostProgress {
  bytesDone?: number;
  /** An import: objects of the dump's table of contents loaded so far, and the current one. */
  objectsDone?: number;
  currentObject?: string;
}

/**
 * Engine work on the machine that holds the data. Host activities never touch the catalog: they
 * take what they need as input and return what they did, so a host worker runs on a machine that
 * has no control-plane credentials. Idempotent, like every activity.
 */
export function createHostActivities({ engine, hostId, secretKey, faults = [], logger }: HostDeps) {
  /** Cancellation of the running activity; none when called in-process (wake-on-connect). */
  const signal = () => {
    try {
      return Context.current().cancellationSignal;
    } catch {
      return undefined;
    }
  };

  /** The source DSN an import carries sealed; opened only here, on the host that uses it. */
  const openSource = (sealed: string): SourceDsn => {
    let text: string;
    try {
      text = decryptSecret(sealed, secretKey);
    } catch {
      throw failure('Invalid', 'the import source cannot be opened with this host\'s secret key (LAMPION_SECRET_KEY differs from the API\'s)');
    }
    try {
      return parseSourceDsn(text);
    } catch (err) {
      // The API checked it already; the message never quotes the DSN.
      throw failure('ImportSourceInvalid', `the source DSN is not usable: ${(err as Error).message}`);
    }
  };

  /** A database of a compute on this host, as the schema diff reaches it (its private socket). */
  const diffDatabase = (c: ComputeSocket, database: string): DiffDatabase => ({ socketDir: engine.layout.socketDir(c.endpointId), port: c.port, database });

  const activities = {
    /** The endpoint's port on this host: the one it has, or a free one now recorded here. */
    async reservePort(endpointId: string): Promise<number> {
      try {
        return await engine.ports.reserve(endpointId);
      } catch (err) {
        if (err instanceof NoFreePortError) throw failure('NoFreePort', `${err.message} on host ${hostId}`);
        throw err;
      }
    },

    async createRootBranchData(i: { branchId: string; pgVersion: number }): Promise<{ driver: StorageDriver; historyId: string }> {
      return engine.createRootBranchData(i.branchId, i.pgVersion);
    },

    /**
     * The undo of a fork or restore into an existing branch's place (reset, in-place restore):
     * only the data dir it wrote goes; the branch's history (archive, bases) stays.
     */
    async removeForkedData(branchId: string): Promise<void> {
      await engine.stopEndpoint({ branchId });
      await engine.branches.removeDataDir(branchId);
    },

    /** Everything of the branch on this host: data dir, WAL archive of every history, bases. */
    async removeBranchData(branchId: string): Promise<void> {
      await engine.stopEndpoint({ branchId });
      await engine.removeBranchData(branchId);
    },

    /**
     * Returns once the compute accepts connections. Its move into its cgroups (a cgroup v1 move
     * waits ~13 ms for an RCU grace period) finishes meanwhile, off the path of the branch
     * creation or wake that waits for this; the engine keeps the branch locked until then, so a
     * stop or resize cannot overtake it. `limitsEnforced` says whether this host enforces them.
     */
    async startEndpoint(spec: EndpointSpec): Promise<{ port: number; limitsEnforced: boolean }> {
      const { limited } = await engine.wakeEndpoint(spec);
      limited.catch((err) => logger?.error({ err, endpointId: spec.endpointId }, 'could not put the compute under its limits'));
      return { port: spec.port, limitsEnforced: engine.limiter.enforced };
    },

    async stopEndpoint(input: { endpointId: string; branchId: string }): Promise<void> {
      await engine.stopEndpoint(input);
    },

    /** Applies a new size to the running compute. */
    async resizeEndpoint(spec: EndpointSpec): Promise<{ limitsEnforced: boolean }> {
      return engine.resizeEndpoint(spec);
    },

    /** CPU seconds the compute's cgroup has used so far; null where it cannot be measured. */
    async sampleCpu(endpointId: string): Promise<{ cpuSeconds: number | null }> {
      return { cpuSeconds: (await engine.cpuUsageSeconds(endpointId)) ?? null };
    },

    async removeEndpointFiles(endpointId: string): Promise<void> {
      await engine.removeEndpointFiles(endpointId);
    },

    /**
     * Forks the parent's data (running or not) into the child's data dir. Long on the copy
     * driver: it heartbeats the bytes written, stops its copy when cancelled, and a retry first
     * stops whatever copy an earlier attempt left running into the same directory.
     */
    async forkBranchData(i: ForkParent & { childBranchId: string }): Promise<ForkResult> {
      return engine.forkBranchData(i.parentBranchId, i.childBranchId, i.parentEndpoint, { signal: signal() });
    },

    /**
     * Port, fork and start in one activity: each separate step would cost a round trip through
     * Temporal, which on a fork of a few tens of milliseconds is most of the time. Each part is
     * idempotent, so a retry resumes where the last attempt stopped.
     */
    async provisionBranchCompute(i: ForkParent & { endpointId: string; childBranchId: string; computeCu: number; projectId?: string }) {
      const port = await activities.reservePort(i.endpointId);
      const { driver, lsn, historyId } = await activities.forkBranchData(i);
      // A cancellation that landed after the copy (during its sync) stops here, before a compute starts.
      const s = signal();
      if (s?.aborted) throw s.reason instanceof Error ? s.reason : new CancelledFailure('cancelled');
      const { limitsEnforced } = await activities.startEndpoint({ endpointId: i.endpointId, branchId: i.childBranchId, port, computeCu: i.computeCu, projectId: i.projectId });
      return { port, driver, lsn, historyId, limitsEnforced };
    },

    /**
     * A read replica: its port, a standby fork of the primary's data (running or not) and its
     * compute started; returns once the standby is consistent and accepts read-only connections.
     * Each part is idempotent, so a retry resumes where the last attempt stopped.
     */
    async provisionReplicaCompute(i: { replicaId: string; primaryBranchId: string; primaryEndpoint: { endpointId: string; port: number }; computeCu: number; projectId?: string }) {
      const port = await activities.reservePort(i.replicaId);
      const { driver, lsn } = await engine.createStandbyData({ primaryBranchId: i.primaryBranchId, primaryEndpoint: i.primaryEndpoint, replicaId: i.replicaId }, { signal: signal() });
      const s = signal();
      if (s?.aborted) throw s.reason instanceof Error ? s.reason : new CancelledFailure('cancelled');
      // The replica's data key is its own endpoint id (see EndpointSpec.branchId).
      const { limitsEnforced } = await activities.startEndpoint({ endpointId: i.replicaId, branchId: i.replicaId, port, computeCu: i.computeCu, projectId: i.projectId });
      return { port, driver, lsn, limitsEnforced };
    },

    /** A replica's replay position and lag; null when the replica's compute is not running. */
    async replicationStatus(i: { replica: EndpointSpec; primary?: { endpointId: string; branchId: string; port: number } }) {
      if (!(await engine.endpointRunning(i.replica))) return null;
      const primaryRunning = i.primary ? await engine.endpointRunning(i.primary) : false;
      return engine.replicationStatus({ endpointId: i.replica.endpointId, port: i.replica.port }, primaryRunning && i.primary ? i.primary : undefined);
    },

    /**
     * One seed as the user's role. One activity per seed keeps each history payload to one
     * seed's SQL (≤ 1 MB, under Temporal's 2 MB payload limit) however many a project has.
     */
    async runSeed(i: { spec: EndpointSpec; passwordSealed: string; seed: SeedScript }): Promise<SeedResult> {
      try {
        const [result] = await runSeeds({ port: i.spec.port, user: USER_ROLE, password: decryptSecret(i.passwordSealed, secretKey) }, [i.seed]);
        return result;
      } catch (err) {
        if (err instanceof SeedError) throw failure('SeedFailed', err.message, { seed_id: err.seed.id, seed_name: err.seed.name, error: err.pgError, result: err.results[0] });
        throw err;
      }
    },

    /** What the compute uses now, measured on its host (see HostEngine.endpointMetrics). */
    async sampleEndpointMetrics(spec: EndpointSpec): Promise<EndpointMetrics> {
      return engine.endpointMetrics(spec);
    },

    /** The compute log's last lines (the file outlives a suspend). */
    async readEndpointLog(i: { endpointId: string; lines: number }): Promise<string[]> {
      return engine.endpointLogLines(i.endpointId, i.lines);
    },

    /** An extension only a superuser may create or drop, done by the platform on the user's behalf. */
    async manageExtension(i: { spec: EndpointSpec; database: string; name: string; action: 'create' | 'drop' }): Promise<void> {
      try {
        await engine.platformExtension(i.spec, i.database, i.name, i.action);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        // The database's answer (missing, in use, depended on) is the user's to read, not to retry.
        if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) throw failure('ExtensionRefused', e.message ?? 'refused', { sqlstate: e.code });
        throw err;
      }
    },

    /** Whether any user session is open on the compute: an idle sweep must not cut one off. */
    async endpointHasClients(spec: EndpointSpec): Promise<boolean> {
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

    /** A base backup of the branch's current history; long on the copy driver (pg_basebackup). */
    async takeBase(i: { branchId: string; baseId: string; endpoint?: { endpointId: string; port: number } }): Promise<BaseInfo> {
      return engine.takeBase(i.branchId, i.baseId, i.endpoint, { signal: signal() });
    },

    /** pg_stat_archiver of the running compute; null when it is not running. */
    async archiverStatus(spec: EndpointSpec) {
      if (!(await engine.endpointRunning(spec))) return null;
      return archiverStats(engine.layout.socketDir(spec.endpointId), spec.port);
    },

    /** The history the branch's data dir writes now. */
    async currentHistory(branchId: string): Promise<string> {
      return (await engine.history(branchId)).historyId;
    },

    async removeBase(i: { branchId: string; historyId: string; baseId: string }): Promise<void> {
      await engine.removeBase(i);
    },

    /** Where the branch's history ends now, archived through that end (a named backup's LSN). */
    async historyEnd(i: { branchId: string; endpoint?: { endpointId: string; port: number } }): Promise<HistoryEnd> {
      try {
        return await engine.historyEnd(i.branchId, undefined, i.endpoint);
      } catch (err) {
        if (err instanceof HistoryGapError) throw failure('HistoryUnavailable', err.message);
        throw err;
      }
    },

    /**
     * The history, base and exact LSN a restore replays to: an LSN of a history, or a moment
     * (the LSN of the first commit after it, read from the archive), with the commit time of the
     * last transaction the restore holds.
     */
    async resolveRestoreTarget(i: {
      sourceBranchId: string;
      endpoint?: { endpointId: string; port: number };
      currentHistoryId: string | null;
      histories: HistoryRow[];
      bases: BaseRow[];
      target: { lsn?: string; historyId?: string; timestamp?: string };
      /** Oldest moment the retention window allows (ISO). */
      windowStart: string;
    }): Promise<{ historyId: string; baseId: string; lsn: string; lastCommitAt: string | null }> {
      const windowNote = `the retention window starts at ${i.windowStart}`;
      let historyId: string;
      let atMicros: bigint | undefined;
      if (i.target.timestamp !== undefined) {
        atMicros = parseTimestampMicros(i.target.timestamp);
        if (atMicros === undefined) throw failure('InvalidRestoreTarget', `${i.target.timestamp} is not an ISO 8601 timestamp with an offset`);
        if (atMicros < BigInt(Date.parse(i.windowStart)) * 1000n) throw failure('InvalidRestoreTarget', `${i.target.timestamp} is before what the history keeps: ${windowNote}`);
        if (atMicros > BigInt(Date.now()) * 1000n) throw failure('InvalidRestoreTarget', `${i.target.timestamp} is in the future`);
        const h = historyAt(i.histories, atMicros);
        if (!h) throw failure('InvalidRestoreTarget', `branch ${i.sourceBranchId} has no history at ${i.target.timestamp} (${windowNote})`);
        historyId = h.historyId;
      } else {
        historyId = i.target.historyId ?? i.currentHistoryId ?? '';
        if (!historyId) throw failure('HistoryUnavailable', `branch ${i.sourceBranchId} has no recorded history yet`);
      }
      const current = historyId === i.currentHistoryId;
      let end: HistoryEnd;
      try {
        end = await engine.historyEnd(i.sourceBranchId, historyId, current ? i.endpoint : undefined);
      } catch (err) {
        if (err instanceof HistoryGapError) throw failure('HistoryUnavailable', err.message);
        throw err;
      }
      const base = atMicros !== undefined ? baseForTime(i.bases, historyId, atMicros) : baseForLsn(i.bases, historyId, i.target.lsn!);
      if (!base) {
        throw failure('InvalidRestoreTarget', `no base backup of branch ${i.sourceBranchId} reaches back to ${i.target.timestamp ?? i.target.lsn} (${windowNote}; a branch's first base is taken by the backup Schedule, or by its first named backup)`);
      }
      let lsn: string;
      if (atMicros !== undefined) {
        // Forward from the base, stopping at the first commit after the moment.
        const t = atMicros;
        const commits = await engine.historyCommits(i.sourceBranchId, end, base.startLsn, (c) => c.atMicros > t && compareLsn(c.lsn, base.endLsn) >= 0);
        lsn = lsnForTime(commits, atMicros, base, end.endLsn);
      } else {
        lsn = normalizeLsn(i.target.lsn!);
      }
      if (compareLsn(lsn, end.endLsn) > 0) throw failure('InvalidRestoreTarget', `LSN ${lsn} is past the end of the branch's history (${end.endLsn})`);
      const last = await engine.lastCommitBefore(i.sourceBranchId, end, base.startLsn, lsn);
      return { historyId, baseId: base.id, lsn, lastCommitAt: last?.at ?? null };
    },

    /** Port, a copy of the base replaying to the target, and the compute started once promoted. */
    async provisionRestoredCompute(i: {
      endpointId: string;
      childBranchId: string;
      computeCu: number;
      projectId?: string;
      sourceBranchId: string;
      historyId: string;
      baseId: string;
      targetLsn: string;
    }) {
      const port = await activities.reservePort(i.endpointId);
      const { driver, historyId } = await engine.restoreBranchData(
        { sourceBranchId: i.sourceBranchId, historyId: i.historyId, baseId: i.baseId, childBranchId: i.childBranchId, targetLsn: i.targetLsn },
        { signal: signal() },
      );
      const s = signal();
      if (s?.aborted) throw s.reason instanceof Error ? s.reason : new CancelledFailure('cancelled');
      const { limitsEnforced } = await activities.startEndpoint({ endpointId: i.endpointId, branchId: i.childBranchId, port, computeCu: i.computeCu, projectId: i.projectId });
      return { port, driver, historyId, limitsEnforced };
    },

    /** The branch's own data rewound from a base of its history (its current data is set aside). */
    async restoreBranchDataInPlace(i: { sourceBranchId: string; historyId: string; baseId: string; childBranchId: string; targetLsn: string }): Promise<ForkResult> {
      return engine.restoreBranchData(i, { signal: signal() });
    },

    /** The data a restore set aside becomes another branch's (a rename; O(1) on every driver). */
    async adoptBranchDataAside(i: { fromBranchId: string; toBranchId: string }): Promise<void> {
      await engine.branches.adoptAside(i.fromBranchId, i.toBranchId);
    },

    async returnBranchDataAside(i: { fromBranchId: string; toBranchId: string }): Promise<void> {
      await engine.branches.returnAside(i.fromBranchId, i.toBranchId);
    },

    async pruneHistory(i: { branchId: string; historyId: string; timeline: number; keepFromLsn: string }): Promise<void> {
      await engine.pruneHistory(i);
    },

    async removeHistory(i: { branchId: string; historyId: string }): Promise<void> {
      await engine.removeHistory(i);
    },

    /**
     * A merge's DDL: three diffs of one database (parent → branch, and what each side changed
     * since the fork point), each statement classified, then the three-way plan. Reads only.
     */
    async planSchemaMerge(i: { database: string; forkPoint: ComputeSocket; parent: ComputeSocket; branch: ComputeSocket }): Promise<SchemaMergePlan> {
      const [fork, parent, branch] = [i.forkPoint, i.parent, i.branch].map((c) => diffDatabase(c, i.database));
      let diffs: DiffStatement[][];
      try {
        diffs = [await schemaDiff(parent, branch), await schemaDiff(fork, branch), await schemaDiff(fork, parent)];
      } catch (err) {
        if (sqlstateOf(err) === '3D000') throw failure('NotFound', `database ${i.database} does not exist on both sides of the merge`);
        throw err;
      }
      const ctx = await mergeContext(parent);
      const classify = async (statements: DiffStatement[]) => {
        const out: ClassifiedStatement[] = [];
        for (const d of statements) {
          const [tree] = await statementTrees(d.sql);
          out.push(withEngineFlags(classifyStatement(d.sql, tree?.node ?? {}, ctx), d));
        }
        return out;
      };
      const plan = planMerge({ toBranch: await classify(diffs[0]), branchChanges: await classify(diffs[1]), parentChanges: await classify(diffs[2]) });
      return { statements: plan.apply, keptParentChanges: plan.keptParentChanges, conflicts: plan.conflicts };
    },

    /**
     * The merge's statements on the parent as its user role, in one transaction (all or none),
     * with lock and statement timeouts so a busy table fails the merge instead of stalling it.
     * A retry after a lost answer first checks whether the commit happened: if a fresh diff no
     * longer proposes any of the statements, they are in.
     */
    async applySchemaMerge(i: { spec: EndpointSpec; passwordSealed: string; database: string; statements: string[]; branch: ComputeSocket }): Promise<{ alreadyApplied: boolean }> {
      if (Context.current().info.attempt > 1) {
        const fresh = new Set((await schemaDiff(diffDatabase(i.spec, i.database), diffDatabase(i.branch, i.database))).map((d) => d.sql));
        if (!i.statements.some((s) => fresh.has(s))) return { alreadyApplied: true };
      }
      const c = new Client({ host: '127.0.0.1', port: i.spec.port, user: USER_ROLE, password: decryptSecret(i.passwordSealed, secretKey), database: i.database, application_name: 'lampion-merge' });
      c.on('error', () => undefined);
      await c.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SET LOCAL lock_timeout = '${MERGE_LOCK_TIMEOUT_MS}ms'`);
        await c.query(`SET LOCAL statement_timeout = '${MERGE_STATEMENT_TIMEOUT_MS}ms'`);
        await c.query('SET LOCAL check_function_bodies = off');
        for (const [n, sql] of i.statements.entries()) {
          try {
            await c.query(sql);
          } catch (err) {
            const e = err as { code?: string; message: string; position?: string };
            await c.query('ROLLBACK').catch(() => undefined);
            if (!e.code || e.code.startsWith('08')) throw err;
            throw failure('MergeFailed', `statement ${n + 1} of ${i.statements.length} failed on the parent, nothing was applied: ${e.message}`, {
              statement: sql,
              index: n,
              sqlstate: e.code,
              ...(e.position ? { position: Number(e.position) } : {}),
            });
          }
        }
        await c.query('COMMIT');
        return { alreadyApplied: false };
      } finally {
        await c.end().catch(() => undefined);
      }
    },

    /** The source's top statements by total time (pg_stat_statements), as the user role ran them. */
    async topReplayStatements(i: { spec: EndpointSpec; passwordSealed: string; database: string; limit: number }): Promise<TopStatement[]> {
      return topStatements({ port: i.spec.port, password: decryptSecret(i.passwordSealed, secretKey), database: i.database }, i.limit);
    },

    /** One statement replayed on both sides, rolled back each time, with its verdict. */
    async replayStatement(i: {
      source: { spec: EndpointSpec; passwordSealed: string };
      target: { spec: EndpointSpec; passwordSealed: string };
      database: string;
      query: string;
      options: ReplayOptions;
    }): Promise<ReplayedQuery> {
      const conn = (x: { spec: EndpointSpec; passwordSealed: string }) => ({ port: x.spec.port, password: decryptSecret(x.passwordSealed, secretKey), database: i.database });
      return replayStatement(conn(i.source), conn(i.target), i.query, i.options);
    },

    /** The analyst's masked view of a database made or remade (see activities/masking.ts). */
    async applyBranchMasking(i: { spec: EndpointSpec; database: string; rules: MaskingRuleInput[]; knownColumns: string[] | null; analystPasswordSealed: string; previous?: MaskingApplied }): Promise<MaskingApplied> {
      return withSystemClient(
        engine.layout.socketDir(i.spec.endpointId),
        i.spec.port,
        (c) => applyMasking(c, { database: i.database, rules: i.rules, knownColumns: i.knownColumns, analystPassword: decryptSecret(i.analystPasswordSealed, secretKey), previous: i.previous }),
        i.database,
      );
    },

    async removeBranchMasking(i: { spec: EndpointSpec; database: string; applied: Pick<MaskingApplied, 'revokedSchemas' | 'revokedDatabases'> }): Promise<void> {
      await withSystemClient(engine.layout.socketDir(i.spec.endpointId), i.spec.port, (c) => removeMasking(c, i.applied), i.database);
    },

    async bootstrapEndpoint(i: { spec: EndpointSpec; passwordSealed: string }): Promise<{ createRole: boolean }> {
      return engine.bootstrapRoles(i.spec, decryptSecret(i.passwordSealed, secretKey));
    },

    /**
     * Checks an import's source from the host that will read it (its network path, its TLS, its
     * installs' extensions). A bad source is an answer (`ok: false` and errors), not a failure.
     */
    async inspectImportSource(i: { sourceSealed: string; targetMajor: number }): Promise<SourceInspection> {
      const dsn = openSource(i.sourceSealed);
      try {
        return await engine.inspectImportSource(dsn, i.targetMajor);
      } catch (err) {
        // Ours (the tunnel's socket, say): retried, and never with the password in it.
        throw new Error(scrubSecret((err as Error).message ?? String(err), [dsn.password]));
      }
    },

    /**
     * pg_dump of the source | psql into the branch's compute, as the user's role. Long: heartbeats
     * carry the bytes and the object being loaded; a cancellation kills both programs. A retry
     * (the worker died) empties the database first. Failures of the dump or the load are the
     * source's and final (ImportFailed); no message carries the source's password.
     */
    async loadSourceDump(i: { spec: EndpointSpec; passwordSealed: string; sourceSealed: string }): Promise<ImportResult> {
      const dsn = openSource(i.sourceSealed);
      const password = decryptSecret(i.passwordSealed, secretKey);
      let attempt = 1;
      try {
        attempt = Context.current().info.attempt;
      } catch {
        // called in-process
      }
      try {
        return await engine.importDatabase(dsn, { endpointId: i.spec.endpointId, branchId: i.spec.branchId, port: i.spec.port, password }, { signal: signal(), fresh: attempt === 1 });
      } catch (err) {
        const s = signal();
        if (s?.aborted) throw s.reason instanceof Error ? s.reason : new CancelledFailure('cancelled');
        const message = scrubSecret((err as Error).message ?? String(err), [dsn.password, password]);
        if (err instanceof ImportError) throw failure('ImportFailed', message, { stage: err.stage, ...(err.sourceError ? { source_error: err.sourceError } : {}) });
        throw new Error(message);
      }
    },
  };
  return withFaults(activities, faults);
}

export type HostActivities = ReturnType<typeof createHostActivities>;

type Fn = (...args: any[]) => Promise<unknown>;

/**
 * What the host worker registers: every activity heartbeats on its own while it runs (a third of
 * its heartbeat timeout), so a dead worker is noticed in seconds and a cancellation reaches the
 * activity; forks report the bytes written so far.
 */
export function withHeartbeats<T extends Record<string, Fn>>(activities: T, progress: (name: string, args: unknown[]) => Promise<HostProgress | undefined>): T {
  const out: Record<string, Fn> = {};
  for (const [name, fn] of Object.entries(activities)) {
    out[name] = async (...args: unknown[]) => {
      const ctx = Context.current();
      const every = Math.max(200, Math.floor((ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
      const beat = async () => ctx.heartbeat(await progress(name, args).catch(() => undefined));
      const timer = setInterval(() => void beat(), every);
      try {
        ctx.heartbeat();
        return await fn(...args);
      } catch (err) {
        // A copy killed by its cancellation fails as a command; report it as what it is, so the
        // workflow sees a cancellation (and ends cancelled), not a failure of the host.
        const s = ctx.cancellationSignal;
        if (s.aborted && s.reason instanceof Error) throw s.reason;
        throw err;
      } finally {
        clearInterval(timer);
      }
    };
  }
  return out as T;
}
