import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { HostLayout } from './layout';
import type { PgInstalls } from './pgInstalls';
import { ensureOwnedDir, exists, writeFileAtomic } from './fs';
import { isRunning, pgBin } from './cluster';
import { run, LongRunOptions } from './exec';
import { takeBase } from './fork';
import { removeDataDir, StorageDriver } from './storage';
import {
  archiveDir,
  commitsBetween,
  ensureArchiveDir,
  ensureHistory,
  pruneSegments,
  readArchivedEnd,
  switchSegment,
  TransactionEnd,
  waitArchived,
  restoreCommand,
} from './walArchive';
import { compareLsn, lsnFromBigInt, lsnToBigInt } from '../domain/lsn';
import { lastCommitBefore as lastCommitOf } from '../domain/restoreTarget';

/** A base backup as it lies on the host: consistent for any replay target at or past `endLsn`. */
export interface BaseInfo {
  baseId: string;
  branchId: string;
  historyId: string;
  driver: StorageDriver;
  /** Lower bound of its content: recovery reads archived WAL from the segment holding it. */
  startLsn: string;
  endLsn: string;
  timeline: number;
  takenAt: string;
}

/** Where a history stands: its archive, timeline and the LSN its WAL reaches. */
export interface HistoryEnd {
  historyId: string;
  timeline: number;
  /** The insert position (running compute) or the end its last clean stop recorded. */
  endLsn: string;
}

const baseInfoFile = (baseDir: string) => `${baseDir}.json`;

async function controlTimeline(pgs: PgInstalls, dataDir: string): Promise<number> {
  const pg = await pgs.forDataDir(dataDir);
  const { stdout } = await run(pgBin(pg, 'pg_controldata'), ['-D', dataDir], { user: pg.user, env: { LC_ALL: 'C', LANG: 'C', LANGUAGE: '' } });
  const m = /^Latest checkpoint's TimeLineID:\s*(\d+)/m.exec(stdout);
  if (!m) throw new Error(`pg_controldata -D ${dataDir} printed no timeline`);
  return Number(m[1]);
}

export interface RunningCompute {
  socketDir: string;
  port: number;
}

/**
 * Takes a base of the branch's current history (idempotent by base id: a finished one is kept).
 * btrfs: a read-only snapshot; copy driver: pg_basebackup of a running compute, a copy of a
 * stopped one.
 */
export async function takeBranchBase(
  layout: HostLayout,
  pgs: PgInstalls,
  driver: StorageDriver,
  branchId: string,
  baseId: string,
  compute: RunningCompute | undefined,
  long: Pick<LongRunOptions, 'signal'> = {},
): Promise<BaseInfo> {
  const dataDir = layout.branchDataDir(branchId);
  const pg = await pgs.forDataDir(dataDir);
  const historyId = await ensureHistory(dataDir, pg.user);
  const dir = layout.baseDir(branchId, historyId, baseId);
  const done = await readBase(dir);
  if (done) return done;
  await removeDataDir(dir);
  // The compute user writes the base (pg_basebackup) and reads it (pg_controldata, a restore's copy).
  await ensureOwnedDir(layout.basesDir, pg.user, 0o700);
  await ensureOwnedDir(path.dirname(path.dirname(dir)), pg.user, 0o700);
  await ensureOwnedDir(path.dirname(dir), pg.user, 0o700);
  const running = await isRunning(pg, dataDir);
  if (running && !compute) throw new Error(`branch ${branchId} is running: a base of it needs its compute's socket and port`);
  const { lsn, endLsn } = await takeBase(pg, driver, { dataDir, running, socketDir: compute?.socketDir ?? '', port: compute?.port ?? 0 }, dir, long);
  const info: BaseInfo = {
    baseId,
    branchId,
    historyId,
    driver,
    startLsn: lsn,
    endLsn,
    timeline: await controlTimeline(pgs, dir),
    takenAt: new Date().toISOString(),
  };
  await writeFileAtomic(baseInfoFile(dir), JSON.stringify(info), undefined);
  return info;
}

async function readBase(dir: string): Promise<BaseInfo | undefined> {
  try {
    const info = JSON.parse(await fsp.readFile(baseInfoFile(dir), 'utf8')) as BaseInfo;
    return (await exists(dir)) ? info : undefined;
  } catch {
    return undefined;
  }
}

export async function removeBase(layout: HostLayout, branchId: string, historyId: string, baseId: string): Promise<void> {
  const dir = layout.baseDir(branchId, historyId, baseId);
  await fsp.rm(baseInfoFile(dir), { force: true });
  await removeDataDir(dir);
}

/**
 * Where the branch's history stands now. For the current history of a running compute this
 * first makes the archive reach the present (restore point + segment switch, waiting until
 * archived), so that any target up to the returned end can be replayed from the archive.
 */
export async function historyEnd(layout: HostLayout, pgs: PgInstalls, branchId: string, historyId: string | undefined, compute: RunningCompute | undefined): Promise<HistoryEnd> {
  const dataDir = layout.branchDataDir(branchId);
  const current = await ensureHistory(dataDir, pgs.user).catch(() => undefined);
  const id = historyId ?? current;
  if (!id) throw new Error(`branch ${branchId} has no history on this host`);
  const dir = await ensureArchiveDir(layout, { branchId, historyId: id }, pgs.user);
  if (id === current && compute) {
    const pg = await pgs.forDataDir(dataDir);
    if (await isRunning(pg, dataDir)) {
      const at = await switchSegment(compute.socketDir, compute.port, 'lampion');
      if (at) {
        await waitArchived(compute.socketDir, compute.port, dir, at.timeline, at.lsn);
        return { historyId: id, timeline: at.timeline, endLsn: at.lsn };
      }
    }
  }
  const end = await readArchivedEnd(dir);
  if (!end) throw new HistoryGapError(`the WAL archive of branch ${branchId} (history ${id}) has no recorded end: its compute was not stopped cleanly since archiving began`);
  const segs = (await fsp.readdir(dir)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const timeline = segs.length ? Number.parseInt(segs[segs.length - 1].slice(0, 8), 16) : await controlTimeline(pgs, dataDir);
  return { historyId: id, timeline, endLsn: end };
}

export class HistoryGapError extends Error {}

/**
 * Commit records of the history from `fromLsn` to its end, read from the archive with
 * pg_waldump: how a timestamp becomes an LSN and how an answer names the last commit kept.
 */
export async function historyCommits(
  layout: HostLayout,
  pgs: PgInstalls,
  branchId: string,
  end: HistoryEnd,
  fromLsn: string,
  until?: (c: TransactionEnd) => boolean,
): Promise<TransactionEnd[]> {
  const dir = archiveDir(layout, { branchId, historyId: end.historyId });
  // WAL is per major: only the branch's own pg_waldump reads it.
  return commitsBetween(await pgs.forDataDir(layout.branchDataDir(branchId)), dir, end.timeline, fromLsn, end.endLsn, until);
}

/**
 * The last commit before `lsn`, reading backwards in growing windows (one segment, then four
 * times more…) rather than the whole history since the base: a restore of 100 MB of WAL reads
 * one segment of it here.
 */
export async function lastCommitBefore(layout: HostLayout, pgs: PgInstalls, branchId: string, end: HistoryEnd, floorLsn: string, lsn: string): Promise<TransactionEnd | undefined> {
  const floor = lsnToBigInt(floorLsn);
  const to = lsnToBigInt(lsn);
  let span = 16n * 1024n * 1024n;
  for (;;) {
    const from = to - span > floor ? to - span : floor;
    const commits = await historyCommits(layout, pgs, branchId, { ...end, endLsn: lsn }, lsnFromBigInt(from));
    const last = lastCommitOf(commits, lsn);
    if (last || from === floor) return last;
    span *= 4n;
  }
}

/** Drops archived segments older than the one holding `keepFromLsn` (what the oldest kept base needs). */
export async function pruneHistory(layout: HostLayout, pgs: PgInstalls, branchId: string, historyId: string, timeline: number, keepFromLsn: string): Promise<void> {
  const dir = archiveDir(layout, { branchId, historyId });
  if (!(await exists(dir))) return;
  await pruneSegments(await pgs.forDataDir(layout.branchDataDir(branchId)), dir, timeline, keepFromLsn);
}

/** Removes a whole history of the branch (its archive and bases); never the current one. */
export async function removeHistory(layout: HostLayout, branchId: string, historyId: string): Promise<void> {
  const bases = path.join(layout.basesDir, branchId, historyId);
  for (const b of await fsp.readdir(bases).catch(() => [] as string[])) {
    if (!b.endsWith('.json')) await removeBase(layout, branchId, historyId, b);
  }
  await fsp.rm(bases, { recursive: true, force: true });
  await fsp.rm(archiveDir(layout, { branchId, historyId }), { recursive: true, force: true });
}
