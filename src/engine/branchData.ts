import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { HostLayout } from './layout';
import { ensureOwnedDir, exists, writeFileAtomic } from './fs';
import { createDataDir, removeDataDir, StorageDriver } from './storage';
import { initCluster, isRunning, RecoverySettings } from './cluster';
import type { PgInstalls } from './pgInstalls';
import { combineBases, forkDataDir } from './fork';
import { readHistoryId, startHistory } from './walArchive';
import type { SpareClusters } from './spareClusters';
import { killGroup, groupAlive, LongRunOptions, OsUser } from './exec';

/** Written last into a forked data dir; names its branch because a fork inherits its parent's. */
const FORK_MARKER = '.lampion-fork';
const INIT_MARKER = '.lampion-initialized';

interface ForkMarker {
  branchId: string;
  parentBranchId: string;
  driver: StorageDriver;
  lsn: string;
  historyId?: string;
}

export interface ForkResult {
  driver: StorageDriver;
  lsn: string;
  /** The history the new data dir writes (its WAL archive directory). */
  historyId: string;
}

/** What a fork copies: a branch's data dir (running or not) or a base backup. */
interface ForkOrigin {
  label: string;
  dataDir: string;
  endpoint?: { endpointId: string; port: number };
  /** An incremental base: the chain to combine (full base first), instead of a copy of dataDir. */
  combine?: string[];
}

/**
 * Recovery the data dir does at its next start: recovery.signal plus the settings, which the
 * engine adds to the runtime configuration as long as recovery.signal is there (Postgres removes
 * it when it promotes).
 */
const RECOVERY_FILE = '.lampion-recovery.json';

export async function writeRecovery(dataDir: string, r: RecoverySettings, user: OsUser | undefined): Promise<void> {
  await writeFileAtomic(path.join(dataDir, RECOVERY_FILE), JSON.stringify(r), user);
  await writeFileAtomic(path.join(dataDir, r.primaryConninfo ? 'standby.signal' : 'recovery.signal'), '', user);
}

/** The recovery the data dir is set up for, while it still is (a signal file is there). */
export async function pendingRecovery(dataDir: string): Promise<RecoverySettings | undefined> {
  const signalled = (await exists(path.join(dataDir, 'recovery.signal'))) || (await exists(path.join(dataDir, 'standby.signal')));
  return signalled ? readJson<RecoverySettings>(path.join(dataDir, RECOVERY_FILE)) : undefined;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * A branch's data on disk: a fresh cluster, a fork, set aside during a reset. Every step is
 * idempotent, so a retried activity resumes where the last attempt stopped and never runs a
 * second copy into a directory an earlier attempt is still writing.
 */
export class BranchData {
  /** Forks under way in this process, by child branch. */
  private readonly forks = new Map<string, Promise<unknown>>();

  constructor(
    readonly layout: HostLayout,
    readonly pgs: PgInstalls,
    readonly driver: () => Promise<StorageDriver>,
    /** Clusters made ahead of need, which a root branch takes instead of running initdb. */
    readonly spares: SpareClusters,
  ) {}

  /** A fresh cluster of that major for a root branch: a finished initdb is kept, a partial one redone. */
  async createRoot(branchId: string, major: number): Promise<{ driver: StorageDriver; historyId: string }> {
    const dir = this.layout.branchDataDir(branchId);
    const driver = await this.driver();
    const done = (await exists(path.join(dir, INIT_MARKER))) && (await readHistoryId(dir));
    if (done) return { driver, historyId: done };
    const pg = this.pgs.get(major);
    await removeDataDir(dir);
    if (!(await this.spares.take(major, dir))) {
      await createDataDir(dir, driver, pg.user);
      await initCluster(pg, dir);
    }
    const historyId = await startHistory(dir, pg.user);
    await fsp.writeFile(path.join(dir, INIT_MARKER), '');
    return { driver, historyId };
  }

  /** Names the process group of a copy in progress, so a later attempt can stop it first. */
  private copyLockFile(branchId: string) {
    return `${this.layout.branchDataDir(branchId)}.copying`;
  }

  /** Stops the copy an earlier attempt left running (a worker killed mid-fork), if any. */
  async stopEarlierCopy(branchId: string): Promise<void> {
    const lock = await readJson<{ pgid: number }>(this.copyLockFile(branchId));
    if (lock?.pgid && groupAlive(lock.pgid)) await killGroup(lock.pgid);
    await fsp.rm(this.copyLockFile(branchId), { force: true });
  }

  /** The child's data dir as a fork of the parent's, running or not. A finished fork is kept (same LSN). */
  fork(
    parentBranchId: string,
    childBranchId: string,
    parentEndpoint: { endpointId: string; port: number } | undefined,
    long: Pick<LongRunOptions, 'signal'> = {},
  ): Promise<ForkResult> {
    if (parentBranchId === childBranchId) throw new Error(`branch ${childBranchId} cannot be forked from itself`);
    return this.forkFrom({ label: parentBranchId, dataDir: this.layout.branchDataDir(parentBranchId), endpoint: parentEndpoint }, childBranchId, undefined, long);
  }

  /**
   * A read replica's data dir: a fork of the primary's data (running or not) set up as a hot
   * standby (`recovery` with primary_conninfo: standby.signal). It starts no history of its own:
   * a standby writes no WAL and archives nothing; `historyId` is the primary's, which it replays.
   */
  standby(
    primaryBranchId: string,
    replicaId: string,
    primaryEndpoint: { endpointId: string; port: number } | undefined,
    recovery: RecoverySettings & { primaryConninfo: string },
    primaryHistoryId: string,
    long: Pick<LongRunOptions, 'signal'> = {},
  ): Promise<ForkResult> {
    if (primaryBranchId === replicaId) throw new Error(`branch ${replicaId} cannot be its own replica`);
    const origin = { label: primaryBranchId, dataDir: this.layout.branchDataDir(primaryBranchId), endpoint: primaryEndpoint };
    return this.forkFrom(origin, replicaId, recovery, long, primaryHistoryId);
  }

  /**
   * The child's data dir as a copy of a base backup, set to replay WAL (`recovery`) at its first
   * start: a restore or a branch at a past point. A finished copy is kept.
   */
  fromBase(chain: string[], childBranchId: string, recovery: RecoverySettings, long: Pick<LongRunOptions, 'signal'> = {}): Promise<ForkResult> {
    const baseDir = chain[chain.length - 1];
    return this.forkFrom({ label: `base:${path.basename(baseDir)}`, dataDir: baseDir, ...(chain.length > 1 && { combine: chain }) }, childBranchId, recovery, long);
  }

  /** `replaysHistory`: a standby, which keeps replaying that history instead of starting one. */
  private async forkFrom(origin: ForkOrigin, childBranchId: string, recovery: RecoverySettings | undefined, long: Pick<LongRunOptions, 'signal'>, replaysHistory?: string): Promise<ForkResult> {
    const markerFile = path.join(this.layout.branchDataDir(childBranchId), FORK_MARKER);
    for (;;) {
      const done = await readJson<ForkMarker>(markerFile);
      if (done?.branchId === childBranchId && done.historyId) return { driver: done.driver, lsn: done.lsn, historyId: done.historyId };
      await this.stopEarlierCopy(childBranchId);
      // An earlier attempt in this process (a retry after a heartbeat timeout while it still ran):
      // its copy is killed above; its own cleanup (removing the dir, the .copying file) must finish
      // before this attempt writes, or it would remove this one's.
      const earlier = this.forks.get(childBranchId);
      if (!earlier) break;
      await earlier.catch(() => undefined);
    }
    const attempt = this.forkOnce(origin, childBranchId, recovery, long, replaysHistory);
    this.forks.set(childBranchId, attempt);
    try {
      return await attempt;
    } finally {
      if (this.forks.get(childBranchId) === attempt) this.forks.delete(childBranchId);
    }
  }

  private async forkOnce(origin: ForkOrigin, childBranchId: string, recovery: RecoverySettings | undefined, long: Pick<LongRunOptions, 'signal'>, replaysHistory?: string): Promise<ForkResult> {
    const dir = this.layout.branchDataDir(childBranchId);
    const markerFile = path.join(dir, FORK_MARKER);
    await removeDataDir(dir);
    const driver = await this.driver();
    // The child is the parent's major: its data is the parent's, PG_VERSION included.
    // An incremental base has no PG_VERSION of its own; its full base has.
    const pg = await this.pgs.forDataDir(origin.combine?.[0] ?? origin.dataDir);
    const running = !origin.combine && (await isRunning(pg, origin.dataDir));
    if (running && !origin.endpoint) {
      throw new Error(`${origin.label} is running: forking it needs its endpoint (id and port)`);
    }
    const lockFile = this.copyLockFile(childBranchId);
    try {
      const spawned = { signal: long.signal, onSpawn: (pgid: number) => writeFileAtomic(lockFile, JSON.stringify({ pgid }), undefined) };
      const { lsn } = origin.combine ? await combineBases(pg, origin.combine, dir, spawned) : await forkDataDir(
        pg,
        driver,
        {
          dataDir: origin.dataDir,
          running,
          socketDir: origin.endpoint ? this.layout.socketDir(origin.endpoint.endpointId) : '',
          port: origin.endpoint?.port ?? 0,
        },
        dir,
        spawned,
      );
      if (recovery) await writeRecovery(dir, recovery, pg.user);
      // The fork writes a history of its own from here on; the parent's archive is not its. A
      // standby writes none: it goes on replaying the parent's.
      const historyId = replaysHistory ?? (await startHistory(dir, pg.user));
      const marker: ForkMarker = { branchId: childBranchId, parentBranchId: origin.label, driver, lsn, historyId };
      await writeFileAtomic(markerFile, JSON.stringify(marker), pg.user);
      return { driver, lsn, historyId };
    } finally {
      await fsp.rm(lockFile, { force: true });
    }
  }

  /** Bytes written so far into a branch's data dir: the progress a long fork heartbeats. */
  async bytes(branchId: string): Promise<number> {
    let total = 0;
    // lstat, not the directory entries' types: some filesystems report DT_UNKNOWN for them.
    const walk = async (dir: string): Promise<void> => {
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const p = path.join(dir, name);
        const st = await fsp.lstat(p).catch(() => undefined);
        if (!st) continue;
        if (st.isDirectory()) await walk(p);
        else total += st.size;
      }
    };
    await walk(this.layout.branchDataDir(branchId));
    return total;
  }

  /** The data dir alone (a failed fork into an existing branch's place); its history stays. */
  async removeDataDir(branchId: string): Promise<void> {
    await this.stopEarlierCopy(branchId);
    await removeDataDir(this.layout.branchDataDir(branchId));
  }

  /** Everything of the branch: data dir, the archive of every history, its bases. */
  async remove(branchId: string): Promise<void> {
    await this.removeDataDir(branchId);
    await fsp.rm(this.layout.walArchiveDir(branchId), { recursive: true, force: true });
    const bases = path.join(this.layout.basesDir, branchId);
    for (const history of await fsp.readdir(bases).catch(() => [] as string[])) {
      for (const base of await fsp.readdir(path.join(bases, history)).catch(() => [] as string[])) await removeDataDir(path.join(bases, history, base));
    }
    await fsp.rm(bases, { recursive: true, force: true });
  }

  private asideDir(branchId: string) {
    return `${this.layout.branchDataDir(branchId)}.aside`;
  }

  /**
   * Moves the branch's data dir out of the way (a rename, O(1) on any driver). Its history's
   * archive and bases stay where they are: the fork that replaces it writes a new history, and
   * the old one remains restorable (a restore to before a reset).
   */
  async setAside(branchId: string): Promise<void> {
    const dir = this.layout.branchDataDir(branchId);
    const aside = this.asideDir(branchId);
    // Both there: the aside is an earlier reset's leftover (its cleanup failed), not this reset's
    // (a retry finds the data dir already moved). Keeping it would restore stale data on failure.
    if ((await exists(aside)) && (await exists(dir))) await this.dropAside(branchId);
    if (!(await exists(aside)) && (await exists(dir))) await fsp.rename(dir, aside);
  }

  async restoreAside(branchId: string): Promise<void> {
    const aside = this.asideDir(branchId);
    if (await exists(aside)) {
      await this.stopEarlierCopy(branchId);
      await removeDataDir(this.layout.branchDataDir(branchId));
      await fsp.rename(aside, this.layout.branchDataDir(branchId));
    }
  }

  /** The aside data becomes the data dir of another (new) branch. Idempotent. */
  async adoptAside(fromBranchId: string, toBranchId: string): Promise<void> {
    const aside = this.asideDir(fromBranchId);
    const to = this.layout.branchDataDir(toBranchId);
    if ((await exists(aside)) && !(await exists(to))) await fsp.rename(aside, to);
    if (!(await exists(to))) throw new Error(`no data set aside for branch ${fromBranchId} to give to ${toBranchId}`);
  }

  /** Undoes adoptAside. */
  async returnAside(fromBranchId: string, toBranchId: string): Promise<void> {
    const to = this.layout.branchDataDir(toBranchId);
    if ((await exists(to)) && !(await exists(this.asideDir(fromBranchId)))) await fsp.rename(to, this.asideDir(fromBranchId));
  }

  async dropAside(branchId: string): Promise<void> {
    await removeDataDir(this.asideDir(branchId));
  }
}
