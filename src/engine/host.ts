import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { HostLayout } from './layout';
import { ensureOwnedDir, exists, writeFileAtomic } from './fs';
import { detectDriver, createDataDir, removeDataDir, StorageDriver } from './storage';
import {
  PgInstall,
  initCluster,
  writeRuntimeConf,
  writeHba,
  startCluster,
  stopCluster,
  reloadCluster,
  isRunning,
  withSystemClient,
  SYSTEM_ROLE,
} from './cluster';
import { forkDataDir } from './fork';
import { KeyedLock } from './keyedLock';
import { CgroupLimiter, postgresPids } from './cgroups';
import { pgSettingsForCu, resourceLimitsForCu } from '../domain/sizing';

export interface EndpointSpec {
  endpointId: string;
  branchId: string;
  port: number;
  /** Size in compute units; sets Postgres memory settings and cgroup limits. */
  computeCu?: number;
}

const DEFAULT_CU = 0.25;

/** Written last into a forked data dir; names its branch because a fork inherits its parent's. */
const FORK_MARKER = '.lampion-fork';

interface ForkMarker {
  branchId: string;
  parentBranchId: string;
  driver: StorageDriver;
  lsn: string;
}

async function readForkMarker(file: string): Promise<ForkMarker | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as ForkMarker;
  } catch {
    return undefined;
  }
}

/**
 * The postmaster and its descendants, as postgresPids finds them, but by following
 * /proc/<pid>/task/<pid>/children from the postmaster: a handful of reads instead of one per
 * process on the host (that scan took ~40 ms per compute start here, on the critical path of
 * every branch creation and wake-up). Falls back to postgresPids where the kernel has no
 * CONFIG_PROC_CHILDREN or anything about the pid file is unusual.
 */
/** The postmaster's pid from its pid file, if the file names one (it may be stale). */
async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  const first = (await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0].trim();
  return /^\d+$/.test(first) ? Number(first) : undefined;
}

async function computePids(dataDir: string): Promise<number[]> {
  const postmaster = await readPostmasterPid(dataDir);
  if (postmaster === undefined) return postgresPids(dataDir);
  try {
    // A stale pid file may name another process: the postmaster's cwd is its data directory.
    if ((await fsp.readlink(`/proc/${postmaster}/cwd`)) !== (await fsp.realpath(dataDir))) return postgresPids(dataDir);
  } catch {
    return postgresPids(dataDir);
  }
  const out: number[] = [];
  const queue = [postmaster];
  while (queue.length) {
    const pid = queue.shift()!;
    if (out.includes(pid)) continue;
    let children: string;
    try {
      // Postgres processes are single-threaded: the main thread's list is the process's.
      children = await fsp.readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    } catch {
      if (pid === postmaster) return postgresPids(dataDir);
      continue; // exited meanwhile
    }
    out.push(pid);
    queue.push(...children.split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

/** The name users log in with; powerful inside its databases but not a superuser. */
export const USER_ROLE = 'cloud_admin';

/**
 * One machine's Postgres work: branch data dirs and the endpoints (postgres processes) serving
 * them. Usable without Temporal; activities are thin wrappers around it.
 */
export class HostEngine {
  /** Start, stop and resize of one branch's data dir never overlap (wake-on-connect vs activities). */
  private readonly computeLock = new KeyedLock();

  constructor(
    readonly layout: HostLayout,
    readonly pg: PgInstall,
    readonly driverOverride?: StorageDriver,
    /** Per-endpoint CPU and memory limits; a no-op limiter where the host has no usable cgroups. */
    readonly limiter: CgroupLimiter = new CgroupLimiter({ version: 'none', writable: false, reason: 'not configured' }),
  ) {}

  async prepare(): Promise<void> {
    await fsp.mkdir(this.layout.dataDir, { recursive: true });
    for (const dir of [this.layout.branchesDir, this.layout.endpointsDir, this.layout.walDir]) {
      await ensureOwnedDir(dir, this.pg.user, 0o711);
    }
  }

  driver(): Promise<StorageDriver> {
    return detectDriver(this.layout.branchesDir, this.driverOverride);
  }

  /** A fresh cluster for a root branch. Idempotent: a finished initdb is kept, a partial one redone. */
  async createRootBranchData(branchId: string): Promise<{ driver: StorageDriver }> {
    const dir = this.layout.branchDataDir(branchId);
    const driver = await this.driver();
    if (await exists(path.join(dir, '.lampion-initialized'))) return { driver };
    await removeDataDir(dir);
    await createDataDir(dir, driver, this.pg.user);
    await initCluster(this.pg, dir);
    await fsp.writeFile(path.join(dir, '.lampion-initialized'), '');
    await ensureOwnedDir(this.layout.walArchiveDir(branchId), this.pg.user);
    return { driver };
  }

  /**
   * The child branch's data dir as a fork of the parent's, running or not. Idempotent: a finished
   * fork is kept (same LSN), a partial one redone.
   */
  async forkBranchData(
    parentBranchId: string,
    childBranchId: string,
    parentEndpoint?: { endpointId: string; port: number },
  ): Promise<{ driver: StorageDriver; lsn: string }> {
    if (parentBranchId === childBranchId) throw new Error(`branch ${childBranchId} cannot be forked from itself`);
    const dir = this.layout.branchDataDir(childBranchId);
    const markerFile = path.join(dir, FORK_MARKER);
    const done = await readForkMarker(markerFile);
    if (done?.branchId === childBranchId) return { driver: done.driver, lsn: done.lsn };
    await removeDataDir(dir);
    const parentDir = this.layout.branchDataDir(parentBranchId);
    const driver = await this.driver();
    const running = await isRunning(this.pg, parentDir);
    if (running && !parentEndpoint) {
      throw new Error(`branch ${parentBranchId} is running: forking it needs its endpoint (id and port)`);
    }
    const { lsn } = await forkDataDir(
      this.pg,
      driver,
      {
        dataDir: parentDir,
        running,
        socketDir: parentEndpoint ? this.layout.socketDir(parentEndpoint.endpointId) : '',
        port: parentEndpoint?.port ?? 0,
      },
      dir,
    );
    await ensureOwnedDir(this.layout.walArchiveDir(childBranchId), this.pg.user);
    const marker: ForkMarker = { branchId: childBranchId, parentBranchId, driver, lsn };
    await writeFileAtomic(markerFile, JSON.stringify(marker), this.pg.user);
    return { driver, lsn };
  }

  async removeBranchData(branchId: string): Promise<void> {
    await removeDataDir(this.layout.branchDataDir(branchId));
    await fsp.rm(this.layout.walArchiveDir(branchId), { recursive: true, force: true });
  }

  private runtimeSettings(spec: EndpointSpec) {
    return {
      port: spec.port,
      socketDir: this.layout.socketDir(spec.endpointId),
      walArchiveDir: this.layout.walArchiveDir(spec.branchId),
      extra: pgSettingsForCu(spec.computeCu ?? DEFAULT_CU),
    };
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
    const hbaChanged = await writeHba(this.pg, dataDir);
    if (await isRunning(this.pg, dataDir)) {
      // Survived a platform restart with an older pg_hba.conf: reload so the proxy's socket route works.
      if (hbaChanged) await reloadCluster(this.pg, dataDir);
    } else {
      await ensureOwnedDir(this.layout.endpointDir(spec.endpointId), this.pg.user);
      await fsp.mkdir(path.dirname(socketDir), { recursive: true });
      await ensureOwnedDir(socketDir, this.pg.user);
      await ensureOwnedDir(this.layout.walArchiveDir(spec.branchId), this.pg.user);
      await writeRuntimeConf(this.pg, dataDir, this.runtimeSettings(spec));
      // Outside its groups, the start has the host's CPUs: recovery under a 0.25 vCPU quota
      // would be 4x slower. The quota applies from the move just after.
      await startCluster(this.pg, dataDir, this.layout.endpointLogFile(spec.endpointId));
    }
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
    const postmaster = await readPostmasterPid(dataDir);
    await this.limiter.apply(spec.endpointId, postmaster ? [postmaster] : [], limits);
    await this.limiter.move(spec.endpointId, (await computePids(dataDir)).filter((pid) => pid !== postmaster));
    return { limitsEnforced: true };
  }

  /**
   * A new size on a running compute: cgroup limits at once, reloadable settings by SIGHUP;
   * shared_buffers and max_connections take the new size at the next start.
   */
  resizeEndpoint(spec: EndpointSpec): Promise<{ limitsEnforced: boolean }> {
    return this.computeLock.run(spec.branchId, async () => {
      const dataDir = this.layout.branchDataDir(spec.branchId);
      if (!(await isRunning(this.pg, dataDir))) return { limitsEnforced: this.limiter.enforced };
      await writeRuntimeConf(this.pg, dataDir, this.runtimeSettings(spec));
      await reloadCluster(this.pg, dataDir);
      return this.applyLimits(spec);
    });
  }

  /** CPU seconds used by the compute's cgroup so far; undefined where it cannot be measured. */
  cpuUsageSeconds(endpointId: string): Promise<number | undefined> {
    return this.limiter.cpuUsageSeconds(endpointId);
  }

  stopEndpoint(spec: Pick<EndpointSpec, 'branchId'> & { endpointId?: string }): Promise<void> {
    return this.computeLock.run(spec.branchId, async () => {
      await stopCluster(this.pg, this.layout.branchDataDir(spec.branchId));
      if (spec.endpointId) await this.limiter.remove(spec.endpointId);
    });
  }

  async removeEndpointFiles(endpointId: string): Promise<void> {
    await fsp.rm(this.layout.endpointDir(endpointId), { recursive: true, force: true });
    await fsp.rm(this.layout.socketDir(endpointId), { recursive: true, force: true });
  }

  endpointRunning(spec: Pick<EndpointSpec, 'branchId'>): Promise<boolean> {
    return isRunning(this.pg, this.layout.branchDataDir(spec.branchId));
  }

  /**
   * The user's role and the platform defaults of a new cluster. CREATEROLE is granted only when
   * the guard module is loaded: on Postgres 15 a CREATEROLE role could otherwise grant itself
   * pg_execute_server_program and reach the host shell.
   */
  async bootstrapRoles(spec: EndpointSpec, password: string): Promise<{ createRole: boolean }> {
    const createRole = Boolean(this.pg.guardLibrary);
    await withSystemClient(this.layout.socketDir(spec.endpointId), spec.port, async (c) => {
      const pw = c.escapeLiteral(password);
      const attrs = `LOGIN CREATEDB ${createRole ? 'CREATEROLE' : 'NOCREATEROLE'} NOSUPERUSER NOREPLICATION NOBYPASSRLS`;
      const existing = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [USER_ROLE]);
      const verb = existing.rowCount ? 'ALTER' : 'CREATE';
      await c.query(`${verb} ROLE ${c.escapeIdentifier(USER_ROLE)} WITH ${attrs} PASSWORD ${pw}`);
      await c.query(`GRANT pg_monitor, pg_signal_backend TO ${c.escapeIdentifier(USER_ROLE)}`);
      await c.query(`ALTER DATABASE postgres OWNER TO ${c.escapeIdentifier(USER_ROLE)}`);
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    });
    return { createRole };
  }

  private asideDir(branchId: string) {
    return `${this.layout.branchDataDir(branchId)}.aside`;
  }

  /**
   * Moves the branch's data dir and WAL archive out of the way (a rename, O(1) on any driver).
   * The archive goes too: the old history does not apply to the fork that replaces it.
   */
  async setBranchDataAside(branchId: string): Promise<void> {
    const dir = this.layout.branchDataDir(branchId);
    const aside = this.asideDir(branchId);
    if (!(await exists(aside)) && (await exists(dir))) await fsp.rename(dir, aside);
    const wal = this.layout.walArchiveDir(branchId);
    if (!(await exists(`${wal}.aside`)) && (await exists(wal))) await fsp.rename(wal, `${wal}.aside`);
  }

  async restoreBranchDataAside(branchId: string): Promise<void> {
    const aside = this.asideDir(branchId);
    if (await exists(aside)) {
      await removeDataDir(this.layout.branchDataDir(branchId));
      await fsp.rename(aside, this.layout.branchDataDir(branchId));
    }
    const wal = this.layout.walArchiveDir(branchId);
    if (await exists(`${wal}.aside`)) {
      await fsp.rm(wal, { recursive: true, force: true });
      await fsp.rename(`${wal}.aside`, wal);
    }
  }

  async dropBranchDataAside(branchId: string): Promise<void> {
    await removeDataDir(this.asideDir(branchId));
    await fsp.rm(`${this.layout.walArchiveDir(branchId)}.aside`, { recursive: true, force: true });
  }

  /** User sessions on the compute (the platform's own are not counted). */
  async hasClientSessions(spec: EndpointSpec): Promise<boolean> {
    return withSystemClient(this.layout.socketDir(spec.endpointId), spec.port, async (c) => {
      const r = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename IS DISTINCT FROM $1 AND pid <> pg_backend_pid()",
        [SYSTEM_ROLE],
      );
      return r.rows[0].n > 0;
    });
  }

}
