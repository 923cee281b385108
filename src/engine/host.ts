import { lastLines } from './logTail';
import { createExtensionSql, dropExtensionSql } from '../domain/pgsql/extensions';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { HostLayout } from './layout';
import { ensureOwnedDir } from './fs';
import { detectDriver, StorageDriver } from './storage';
import { RuntimeSettings, waitPromoted, writeRuntimeConf, writeHba, startCluster, stopCluster, reloadCluster, isRunning, withSystemClient, SYSTEM_ROLE } from './cluster';
import { KeyedLock } from './keyedLock';
import { CgroupLimiter } from './cgroups';
import { clearStaleSocketLock, postmasterPid, processTree } from './postmaster';
import { BranchData } from './branchData';
import { SpareClusters } from './spareClusters';
import { PortRegistry } from './portRegistry';
import { bootstrapRoles, hasClientSessions } from './roles';
import { pgSettingsForCu, resourceLimitsForCu } from '../domain/sizing';
import type { LongRunOptions } from './exec';
import type { PgInstalls } from './pgInstalls';
import { pendingRecovery, ForkResult } from './branchData';
import { BaseInfo, baseChain, INCREMENTAL_CHAIN_MAX, HistoryEnd, historyCommits, historyEnd, lastCommitBefore, pruneHistory, removeBase, removeHistory, takeBranchBase } from './backups';
import type { TransactionEnd } from './walArchive';
import { raiseToMinimums, replicationStatus, standbyConninfo, standbyMinimums, type ReplicationStatus } from './replication';
import { archiveDir, clearArchivedEnd, ensureArchiveDir, ensureHistory, restoreCommand, switchSegment, writeArchivedEnd } from './walArchive';
import { DatabaseImports, ImportResult, ImportTarget } from './imports';
import type { SourceInspection } from './sourceInspect';
import type { SourceDsn } from '../domain/sourceDsn';

export interface EndpointMetrics {
  running: boolean;
  /** User sessions (the platform's own not counted); null when the compute is not running. */
  connections: number | null;
  /** Shared-buffer hits in % of block reads since the compute's statistics began. */
  cacheHitRatio: number | null;
  /** Sum of the databases' sizes (pg_database_size). */
  logicalBytes: number | null;
  /** Of the compute's cgroup; null when limits are not enforced on this host. */
  cpuSeconds: number | null;
  memoryBytes: number | null;
  /** The data dir on disk (shared extents of a snapshot counted in full). */
  dataDirBytes: number | null;
}

export interface EndpointSpec {
  endpointId: string;
  /**
   * The data dir the compute serves, and the key its start, stop and supervision are locked and
   * tracked by: its branch's id for a branch's primary endpoint, the replica's own endpoint id for
   * a read replica (a standby copy of its own). Build it with domain/computeData computeDataId.
   */
  branchId: string;
  port: number;
  /** Size in compute units; sets Postgres memory settings and cgroup limits. */
  computeCu?: number;
  /** Only to tag what the supervisor starts for it (a crash restart) with its project. */
  projectId?: string;
}

const DEFAULT_CU = 0.25;

export interface HostOptions {
  /** Ready clusters kept per major for new root branches (see SpareClusters); 0: none. */
  spareClusters?: number;
  /** Incremental bases on top of a full one before the next full one (17+, copy driver); 0: only full bases. */
  incrementalChainMax?: number;
  /** Failures of background work (a spare cluster's initdb): logged by the stack. */
  onBackgroundError?: (err: unknown) => void;
}

/**
 * One machine's Postgres work: the compute processes' lifecycle, over the branch data (see
 * BranchData) and the host's ports (PortRegistry). Usable without Temporal and without the
 * catalog; activities are thin wrappers around it.
 */
export class HostEngine {
  /** Start, stop and resize of one branch's data dir never overlap (wake-on-connect vs activities). */
  private readonly computeLock = new KeyedLock();
  readonly branches: BranchData;
  readonly spares: SpareClusters;
  readonly ports: PortRegistry;
  /** Imports of external databases into new branches (pg_dump | psql). */
  readonly imports: DatabaseImports;
  /** Computes this host started and has not stopped since, by branch: what the supervisor watches. */
  private readonly expected = new Map<string, EndpointSpec>();

  constructor(
    readonly layout: HostLayout,
    readonly pgs: PgInstalls,
    readonly driverOverride?: StorageDriver,
    /** Per-endpoint CPU and memory limits; a no-op limiter where the host has no usable cgroups. */
    readonly limiter: CgroupLimiter = new CgroupLimiter({ version: 'none', writable: false, reason: 'not configured' }),
    portRange: { min: number; max: number } = { min: 56000, max: 56999 },
    readonly options: HostOptions = {},
  ) {
    this.spares = new SpareClusters(layout, pgs, () => this.driver(), options.spareClusters ?? 0, options.onBackgroundError);
    this.branches = new BranchData(layout, pgs, () => this.driver(), this.spares);
    this.ports = new PortRegistry(layout, portRange);
    this.imports = new DatabaseImports(layout, pgs);
  }

  async prepare(): Promise<void> {
    await fsp.mkdir(this.layout.dataDir, { recursive: true });
    for (const dir of [this.layout.branchesDir, this.layout.endpointsDir, this.layout.walDir]) {
      await ensureOwnedDir(dir, this.pgs.user, 0o711);
    }
  }

  driver(): Promise<StorageDriver> {
    return detectDriver(this.layout.branchesDir, this.driverOverride);
  }

  createRootBranchData(branchId: string, major: number): Promise<{ driver: StorageDriver; historyId: string }> {
    return this.branches.createRoot(branchId, major);
  }

  /** The install that runs the branch's data dir (its PG_VERSION). */
  pgFor(branchId: string) {
    return this.pgs.forDataDir(this.layout.branchDataDir(branchId));
  }

  forkBranchData(
    parentBranchId: string,
    childBranchId: string,
    parentEndpoint?: { endpointId: string; port: number },
    long?: Pick<LongRunOptions, 'signal'>,
  ): Promise<ForkResult> {
    return this.branches.fork(parentBranchId, childBranchId, parentEndpoint, long);
  }

  async removeBranchData(branchId: string): Promise<void> {
    // An import still loading into it (a worker that died mid-import left its programs) goes first.
    await this.imports.stopEarlier(branchId);
    return this.branches.remove(branchId);
  }

  /** Checks an import's source from this host, against a target major's extensions. */
  inspectImportSource(dsn: SourceDsn, targetMajor: number): Promise<SourceInspection> {
    return this.imports.inspect(dsn, targetMajor);
  }

  /** Loads the source into the branch's running compute (its database postgres) as the user's role. */
  importDatabase(dsn: SourceDsn, target: ImportTarget, o: { signal?: AbortSignal; fresh?: boolean } = {}): Promise<ImportResult> {
    return this.imports.run(dsn, target, o);
  }

  /** The history the branch's data dir writes, and its archive directory (made when missing). */
  async history(branchId: string): Promise<{ historyId: string; archiveDir: string }> {
    const dataDir = this.layout.branchDataDir(branchId);
    const historyId = await ensureHistory(dataDir, this.pgs.user);
    return { historyId, archiveDir: await ensureArchiveDir(this.layout, { branchId, historyId }, this.pgs.user) };
  }

  private async runtimeSettings(spec: EndpointSpec): Promise<RuntimeSettings> {
    const dataDir = this.layout.branchDataDir(spec.branchId);
    const recovery = await pendingRecovery(dataDir);
    const sized = pgSettingsForCu(spec.computeCu ?? DEFAULT_CU);
    if (recovery?.primaryConninfo) {
      // A standby (read replica): no archive of its own (archive_mode off), and never below the
      // primary's connection and worker slots, which Postgres requires of a hot standby.
      return { port: spec.port, socketDir: this.layout.socketDir(spec.endpointId), recovery, extra: raiseToMinimums(sized, await standbyMinimums(await this.pgFor(spec.branchId), dataDir)) };
    }
    return {
      port: spec.port,
      socketDir: this.layout.socketDir(spec.endpointId),
      walArchiveDir: (await this.history(spec.branchId)).archiveDir,
      recovery,
      extra: sized,
    };
  }

  /** Whether the data dir is a standby's (a read replica): it has no history or archive of its own. */
  async isStandby(dataId: string): Promise<boolean> {
    return Boolean((await pendingRecovery(this.layout.branchDataDir(dataId)))?.primaryConninfo);
  }

  /**
   * A read replica's data dir: the primary's data forked (through its socket when it runs) as a
   * hot standby streaming from the primary's socket and port on this host, replaying the
   * primary's current history's archive whenever streaming is not possible (a suspended primary).
   */
  async createStandbyData(
    i: { primaryBranchId: string; primaryEndpoint: { endpointId: string; port: number }; replicaId: string },
    long?: Pick<LongRunOptions, 'signal'>,
  ): Promise<ForkResult> {
    const { historyId, archiveDir: dir } = await this.history(i.primaryBranchId);
    const primaryConninfo = standbyConninfo({ socketDir: this.layout.socketDir(i.primaryEndpoint.endpointId), port: i.primaryEndpoint.port, applicationName: i.replicaId });
    return this.branches.standby(i.primaryBranchId, i.replicaId, i.primaryEndpoint, { restoreCommand: restoreCommand(dir), primaryConninfo }, historyId, long);
  }

  /** A running replica's replay position and lag behind its primary (undefined primary: suspended). */
  replicationStatus(replica: { endpointId: string; port: number }, primary?: { endpointId: string; port: number }): Promise<ReplicationStatus> {
    const at = (e: { endpointId: string; port: number }) => ({ socketDir: this.layout.socketDir(e.endpointId), port: e.port });
    return replicationStatus(at(replica), primary && at(primary));
  }

  /** Starts the compute (idempotent) and puts it under its CU's limits where the host allows. */
  async startEndpoint(spec: EndpointSpec): Promise<{ limitsEnforced: boolean }> {
    return (await this.wakeEndpoint(spec)).limited;
  }

  /**
   * Like startEndpoint, but resolves as soon as the compute accepts connections; `limited`
   * settles once it is under its limits. Moving processes into a cgroup (v1) waits for an RCU
   * grace period, about 13 ms here, which a client waking the compute need not wait for. The
   * branch stays locked until the limits are on, so a stop or resize never overtakes them.
   */
  async wakeEndpoint(spec: EndpointSpec): Promise<{ limited: Promise<{ limitsEnforced: boolean }> }> {
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const limited = this.computeLock.run(spec.branchId, () => this.startEndpointLocked(spec, onReady));
    await Promise.race([ready, limited]);
    return { limited };
  }

  private async startEndpointLocked(spec: EndpointSpec, onReady: () => void): Promise<{ limitsEnforced: boolean }> {
    const dataDir = this.layout.branchDataDir(spec.branchId);
    const socketDir = this.layout.socketDir(spec.endpointId);
    const pg = await this.pgFor(spec.branchId);
    const hbaChanged = await writeHba(pg, dataDir);
    if (await isRunning(pg, dataDir)) {
      // Survived a platform restart with an older pg_hba.conf: reload so the proxy's socket route works.
      if (hbaChanged) await reloadCluster(pg, dataDir);
    } else {
      await ensureOwnedDir(this.layout.endpointDir(spec.endpointId), pg.user);
      await fsp.mkdir(path.dirname(socketDir), { recursive: true });
      await ensureOwnedDir(socketDir, pg.user);
      await clearStaleSocketLock(socketDir, spec.port);
      const settings = await this.runtimeSettings(spec);
      await writeRuntimeConf(pg, dataDir, settings);
      // A running compute's history goes on past whatever end its last stop recorded (a standby has none).
      if (settings.walArchiveDir) await clearArchivedEnd(settings.walArchiveDir);
      // Outside its groups, the start has the host's CPUs: recovery under a 0.25 vCPU quota
      // would be 4x slower. The quota applies from the move just after.
      const logFile = this.layout.endpointLogFile(spec.endpointId);
      await startCluster(pg, dataDir, logFile);
      // A restore accepts read-only connections once consistent; it is ready when it has promoted.
      if (settings.recovery?.targetLsn) await waitPromoted(socketDir, spec.port, dataDir, logFile);
    }
    this.expected.set(spec.branchId, spec);
    onReady();
    return this.applyLimits(spec);
  }

  /**
   * Moves the compute's processes into its groups: the postmaster first, so that whatever it
   * forks from then on is born inside; then everything it had forked before.
   */
  private async applyLimits(spec: EndpointSpec): Promise<{ limitsEnforced: boolean }> {
    if (!this.limiter.enforced) return { limitsEnforced: false };
    const dataDir = this.layout.branchDataDir(spec.branchId);
    const limits = resourceLimitsForCu(spec.computeCu ?? DEFAULT_CU);
    const postmaster = (await postmasterPid(dataDir))?.pid;
    await this.limiter.apply(spec.endpointId, postmaster ? [postmaster] : [], limits);
    if (postmaster) await this.limiter.move(spec.endpointId, (await processTree(postmaster)).filter((pid) => pid !== postmaster));
    return { limitsEnforced: true };
  }

  /**
   * A new size on a running compute: cgroup limits at once, reloadable settings by SIGHUP;
   * shared_buffers and max_connections take the new size at the next start.
   */
  resizeEndpoint(spec: EndpointSpec): Promise<{ limitsEnforced: boolean }> {
    return this.computeLock.run(spec.branchId, async () => {
      const dataDir = this.layout.branchDataDir(spec.branchId);
      const pg = await this.pgFor(spec.branchId);
      if (!(await isRunning(pg, dataDir))) return { limitsEnforced: this.limiter.enforced };
      await writeRuntimeConf(pg, dataDir, await this.runtimeSettings(spec));
      await reloadCluster(pg, dataDir);
      return this.applyLimits(spec);
    });
  }

  /** CPU seconds used by the compute's cgroup so far; undefined where it cannot be measured. */
  cpuUsageSeconds(endpointId: string): Promise<number | undefined> {
    return this.limiter.cpuUsageSeconds(endpointId);
  }

  stopEndpoint(spec: Pick<EndpointSpec, 'branchId'> & { endpointId?: string }): Promise<void> {
    return this.computeLock.run(spec.branchId, async () => {
      const running = this.expected.get(spec.branchId);
      this.expected.delete(spec.branchId);
      const dataDir = this.layout.branchDataDir(spec.branchId);
      // A data dir that never got its PG_VERSION (a failed initdb or fork) has nothing running.
      const pg = await this.pgFor(spec.branchId).catch(() => undefined);
      // A standby writes no WAL: there is no history of its own to close.
      if (pg && (await isRunning(pg, dataDir)) && spec.endpointId && !(await this.isStandby(spec.branchId))) {
        await this.closeHistory({ endpointId: spec.endpointId, branchId: spec.branchId, port: running?.port });
      }
      if (pg) await stopCluster(pg, dataDir);
      if (spec.endpointId) await this.limiter.remove(spec.endpointId);
    });
  }

  /**
   * Before a clean stop: a restore point and a segment switch, so the archive holds every
   * transaction committed so far and a record past it (what a restore to the end needs), and
   * the LSN where the stopped history ends. Best effort: a stop never fails because of it.
   */
  private async closeHistory(spec: Pick<EndpointSpec, 'endpointId' | 'branchId'> & { port?: number }): Promise<void> {
    const port = spec.port ?? (await this.ports.portOf(spec.endpointId));
    if (!port) return;
    try {
      const at = await switchSegment(this.layout.socketDir(spec.endpointId), port, 'lampion-stop');
      if (at) await writeArchivedEnd((await this.history(spec.branchId)).archiveDir, at.lsn, this.pgs.user);
    } catch {
      // A compute that cannot take the query is stopped all the same.
    }
  }

  private compute(endpoint?: { endpointId: string; port: number }) {
    return endpoint ? { socketDir: this.layout.socketDir(endpoint.endpointId), port: endpoint.port } : undefined;
  }

  /** A base backup of the branch's current history (see backups.ts). */
  async takeBase(branchId: string, baseId: string, endpoint?: { endpointId: string; port: number }, long?: Pick<LongRunOptions, 'signal'>): Promise<BaseInfo> {
    return takeBranchBase(this.layout, this.pgs, await this.driver(), branchId, baseId, this.compute(endpoint), long, this.options.incrementalChainMax ?? INCREMENTAL_CHAIN_MAX);
  }

  removeBase(b: { branchId: string; historyId: string; baseId: string }): Promise<void> {
    return removeBase(this.layout, b.branchId, b.historyId, b.baseId);
  }

  /** Where a history of the branch ends (its current one by default), archived through that end. */
  historyEnd(branchId: string, historyId?: string, endpoint?: { endpointId: string; port: number }): Promise<HistoryEnd> {
    return historyEnd(this.layout, this.pgs, branchId, historyId, this.compute(endpoint));
  }

  historyCommits(branchId: string, end: HistoryEnd, fromLsn: string, until?: (c: TransactionEnd) => boolean) {
    return historyCommits(this.layout, this.pgs, branchId, end, fromLsn, until);
  }

  lastCommitBefore(branchId: string, end: HistoryEnd, floorLsn: string, lsn: string) {
    return lastCommitBefore(this.layout, this.pgs, branchId, end, floorLsn, lsn);
  }

  /**
   * A new branch's data as the source history stood just before `targetLsn`: a copy of the base
   * (or of its chain, combined, for an incremental one) that replays the source's archive at
   * its first start, then promotes.
   */
  async restoreBranchData(
    i: { sourceBranchId: string; historyId: string; baseId: string; childBranchId: string; targetLsn: string },
    long?: Pick<LongRunOptions, 'signal'>,
  ): Promise<ForkResult> {
    const chain = await baseChain(this.layout, i.sourceBranchId, i.historyId, i.baseId);
    const recovery = { restoreCommand: restoreCommand(archiveDir(this.layout, { branchId: i.sourceBranchId, historyId: i.historyId })), targetLsn: i.targetLsn };
    return this.branches.fromBase(chain, i.childBranchId, recovery, long);
  }

  pruneHistory(i: { branchId: string; historyId: string; timeline: number; keepFromLsn: string }): Promise<void> {
    return pruneHistory(this.layout, this.pgs, i.branchId, i.historyId, i.timeline, i.keepFromLsn);
  }

  removeHistory(i: { branchId: string; historyId: string }): Promise<void> {
    return removeHistory(this.layout, i.branchId, i.historyId);
  }

  /** The endpoint's log, socket and port record: removing them releases its port. */
  async removeEndpointFiles(endpointId: string): Promise<void> {
    await fsp.rm(this.layout.endpointDir(endpointId), { recursive: true, force: true });
    await fsp.rm(this.layout.socketDir(endpointId), { recursive: true, force: true });
  }

  async endpointRunning(spec: Pick<EndpointSpec, 'branchId'>): Promise<boolean> {
    const pg = await this.pgFor(spec.branchId).catch(() => undefined);
    return pg ? isRunning(pg, this.layout.branchDataDir(spec.branchId)) : false;
  }

  /**
   * Computes this host started and nobody stopped whose postmaster is gone (killed, OOM, crashed):
   * the supervisor restarts them. One in the middle of a start, stop or resize is left alone.
   */
  async deadComputes(): Promise<EndpointSpec[]> {
    const dead: EndpointSpec[] = [];
    for (const spec of this.expected.values()) if (await this.computeDied(spec.branchId)) dead.push(spec);
    return dead;
  }

  /** Whether this host started the branch's compute, nobody stopped it, and it is gone. */
  async computeDied(branchId: string): Promise<boolean> {
    if (!this.expected.has(branchId) || this.computeLock.busy(branchId)) return false;
    return !(await this.endpointRunning({ branchId }));
  }

  /**
   * For a client about to be routed: waits out a start, stop or resize under way (a supervisor's
   * restart of this very compute, say), then answers whether the compute this host started and
   * nobody stopped is gone and needs starting.
   */
  async computeNeedsStart(branchId: string): Promise<boolean> {
    if (!this.expected.has(branchId)) return false;
    if (this.computeLock.busy(branchId)) await this.computeLock.run(branchId, async () => undefined);
    return this.computeDied(branchId);
  }

  /** Whether a start, stop or resize of the branch's compute is under way here right now. */
  computeBusy(branchId: string): boolean {
    return this.computeLock.busy(branchId);
  }

  async bootstrapRoles(spec: EndpointSpec, password: string): Promise<{ createRole: boolean }> {
    const createRole = Boolean((await this.pgFor(spec.branchId)).guardLibrary);
    await bootstrapRoles(this.layout.socketDir(spec.endpointId), spec.port, password, createRole);
    return { createRole };
  }

  setBranchDataAside(branchId: string): Promise<void> {
    return this.branches.setAside(branchId);
  }

  restoreBranchDataAside(branchId: string): Promise<void> {
    return this.branches.restoreAside(branchId);
  }

  dropBranchDataAside(branchId: string): Promise<void> {
    return this.branches.dropAside(branchId);
  }

  hasClientSessions(spec: EndpointSpec): Promise<boolean> {
    return hasClientSessions(this.layout.socketDir(spec.endpointId), spec.port);
  }

  /**
   * What a compute uses now, measured: its sessions, cache hits and databases' sizes (when it
   * runs), its cgroup's CPU time and memory (when limits are enforced), its data dir on disk.
   */
  async endpointMetrics(spec: EndpointSpec): Promise<EndpointMetrics> {
    const running = await this.endpointRunning(spec);
    const out: EndpointMetrics = {
      running,
      connections: null,
      cacheHitRatio: null,
      logicalBytes: null,
      cpuSeconds: (await this.limiter.cpuUsageSeconds(spec.endpointId)) ?? null,
      memoryBytes: (await this.limiter.memoryUsageBytes(spec.endpointId)) ?? null,
      dataDirBytes: await this.branches.bytes(spec.branchId).catch(() => null),
    };
    if (!running) return out;
    await withSystemClient(this.layout.socketDir(spec.endpointId), spec.port, async (c) => {
      const r = await c.query<{ connections: number; hit: string; read: string; bytes: string }>(
        `SELECT (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename IS DISTINCT FROM $1 AND pid <> pg_backend_pid()) AS connections,
                (SELECT coalesce(sum(blks_hit), 0) FROM pg_stat_database) AS hit, (SELECT coalesce(sum(blks_read), 0) FROM pg_stat_database) AS read,
                (SELECT coalesce(sum(pg_database_size(oid)), 0) FROM pg_database WHERE NOT datistemplate) AS bytes`,
        [SYSTEM_ROLE],
      );
      const row = r.rows[0];
      const hit = Number(row.hit);
      const total = hit + Number(row.read);
      out.connections = row.connections;
      out.cacheHitRatio = total > 0 ? Math.round((10000 * hit) / total) / 100 : null;
      out.logicalBytes = Number(row.bytes);
    });
    return out;
  }

  /** The last lines of the compute's log, which stays beside its socket when it is suspended. */
  endpointLogLines(endpointId: string, lines: number): Promise<string[]> {
    return lastLines(this.layout.endpointLogFile(endpointId), lines);
  }

  /**
   * Creates or drops an extension cloud_admin may not create itself (not trusted), as the
   * platform's superuser, in one database. Which extensions is the caller's decision
   * (domain/pgsql/extensions PLATFORM_EXTENSIONS); the name is quoted, never pasted.
   */
  async platformExtension(spec: EndpointSpec, database: string, name: string, action: 'create' | 'drop'): Promise<void> {
    const sql = action === 'create' ? createExtensionSql(name) : dropExtensionSql(name);
    await withSystemClient(this.layout.socketDir(spec.endpointId), spec.port, (c) => c.query(sql.text), database);
  }
}
