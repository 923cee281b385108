import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { HostLayout } from './layout';
import { ensureOwnedDir, exists, writeFileAtomic } from './fs';
import { createDataDir, removeDataDir, StorageDriver } from './storage';
import { initCluster, isRunning } from './cluster';
import type { PgInstalls } from './pgInstalls';
import { forkDataDir } from './fork';
import { killGroup, groupAlive, LongRunOptions } from './exec';

/** Written last into a forked data dir; names its branch because a fork inherits its parent's. */
const FORK_MARKER = '.lampion-fork';
const INIT_MARKER = '.lampion-initialized';

interface ForkMarker {
  branchId: string;
  parentBranchId: string;
  driver: StorageDriver;
  lsn: string;
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
  ) {}

  /** A fresh cluster of that major for a root branch: a finished initdb is kept, a partial one redone. */
  async createRoot(branchId: string, major: number): Promise<{ driver: StorageDriver }> {
    const dir = this.layout.branchDataDir(branchId);
    const driver = await this.driver();
    if (await exists(path.join(dir, INIT_MARKER))) return { driver };
    const pg = this.pgs.get(major);
    await removeDataDir(dir);
    await createDataDir(dir, driver, pg.user);
    await initCluster(pg, dir);
    await fsp.writeFile(path.join(dir, INIT_MARKER), '');
    await ensureOwnedDir(this.layout.walArchiveDir(branchId), pg.user);
    return { driver };
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
  async fork(
    parentBranchId: string,
    childBranchId: string,
    parentEndpoint: { endpointId: string; port: number } | undefined,
    long: Pick<LongRunOptions, 'signal'> = {},
  ): Promise<{ driver: StorageDriver; lsn: string }> {
    if (parentBranchId === childBranchId) throw new Error(`branch ${childBranchId} cannot be forked from itself`);
    const markerFile = path.join(this.layout.branchDataDir(childBranchId), FORK_MARKER);
    for (;;) {
      const done = await readJson<ForkMarker>(markerFile);
      if (done?.branchId === childBranchId) return { driver: done.driver, lsn: done.lsn };
      await this.stopEarlierCopy(childBranchId);
      // An earlier attempt in this process (a retry after a heartbeat timeout while it still ran):
      // its copy is killed above; its own cleanup (removing the dir, the .copying file) must finish
      // before this attempt writes, or it would remove this one's.
      const earlier = this.forks.get(childBranchId);
      if (!earlier) break;
      await earlier.catch(() => undefined);
    }
    const attempt = this.forkOnce(parentBranchId, childBranchId, parentEndpoint, long);
    this.forks.set(childBranchId, attempt);
    try {
      return await attempt;
    } finally {
      if (this.forks.get(childBranchId) === attempt) this.forks.delete(childBranchId);
    }
  }

  private async forkOnce(
    parentBranchId: string,
    childBranchId: string,
    parentEndpoint: { endpointId: string; port: number } | undefined,
    long: Pick<LongRunOptions, 'signal'>,
  ): Promise<{ driver: StorageDriver; lsn: string }> {
    const dir = this.layout.branchDataDir(childBranchId);
    const markerFile = path.join(dir, FORK_MARKER);
    await removeDataDir(dir);
    const parentDir = this.layout.branchDataDir(parentBranchId);
    const driver = await this.driver();
    // The child is the parent's major: its data is the parent's, PG_VERSION included.
    const pg = await this.pgs.forDataDir(parentDir);
    const running = await isRunning(pg, parentDir);
    if (running && !parentEndpoint) {
      throw new Error(`branch ${parentBranchId} is running: forking it needs its endpoint (id and port)`);
    }
    const lockFile = this.copyLockFile(childBranchId);
    try {
      const { lsn } = await forkDataDir(
        pg,
        driver,
        {
          dataDir: parentDir,
          running,
          socketDir: parentEndpoint ? this.layout.socketDir(parentEndpoint.endpointId) : '',
          port: parentEndpoint?.port ?? 0,
        },
        dir,
        { signal: long.signal, onSpawn: (pgid) => writeFileAtomic(lockFile, JSON.stringify({ pgid }), undefined) },
      );
      await ensureOwnedDir(this.layout.walArchiveDir(childBranchId), pg.user);
      const marker: ForkMarker = { branchId: childBranchId, parentBranchId, driver, lsn };
      await writeFileAtomic(markerFile, JSON.stringify(marker), pg.user);
      return { driver, lsn };
    } finally {
      await fsp.rm(lockFile, { force: true });
    }
  }

  /** Bytes written so far into a branch's data dir: the progress a long fork heartbeats. */
  async bytes(branchId: string): Promise<number> {
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
      await Promise.all(
        entries.map(async (e) => {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) return walk(p);
          total += (await fsp.lstat(p).catch(() => undefined))?.size ?? 0;
        }),
      );
    };
    await walk(this.layout.branchDataDir(branchId));
    return total;
  }

  async remove(branchId: string): Promise<void> {
    await this.stopEarlierCopy(branchId);
    await removeDataDir(this.layout.branchDataDir(branchId));
    await fsp.rm(this.layout.walArchiveDir(branchId), { recursive: true, force: true });
  }

  private asideDir(branchId: string) {
    return `${this.layout.branchDataDir(branchId)}.aside`;
  }

  /**
   * Moves the branch's data dir and WAL archive out of the way (a rename, O(1) on any driver).
   * The archive goes too: the old history does not apply to the fork that replaces it.
   */
  async setAside(branchId: string): Promise<void> {
    const dir = this.layout.branchDataDir(branchId);
    const aside = this.asideDir(branchId);
    const wal = this.layout.walArchiveDir(branchId);
    // Both there: the aside is an earlier reset's leftover (its cleanup failed), not this reset's
    // (a retry finds the data dir already moved). Keeping it would restore stale data on failure.
    if ((await exists(aside)) && (await exists(dir))) await this.dropAside(branchId);
    if (!(await exists(aside)) && (await exists(dir))) await fsp.rename(dir, aside);
    if (!(await exists(`${wal}.aside`)) && (await exists(wal))) await fsp.rename(wal, `${wal}.aside`);
  }

  async restoreAside(branchId: string): Promise<void> {
    const aside = this.asideDir(branchId);
    if (await exists(aside)) {
      await this.stopEarlierCopy(branchId);
      await removeDataDir(this.layout.branchDataDir(branchId));
      await fsp.rename(aside, this.layout.branchDataDir(branchId));
    }
    const wal = this.layout.walArchiveDir(branchId);
    if (await exists(`${wal}.aside`)) {
      await fsp.rm(wal, { recursive: true, force: true });
      await fsp.rename(`${wal}.aside`, wal);
    }
  }

  async dropAside(branchId: string): Promise<void> {
    await removeDataDir(this.asideDir(branchId));
    await fsp.rm(`${this.layout.walArchiveDir(branchId)}.aside`, { recursive: true, force: true });
  }
}
