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
  /**
   * An incremental base (Postgres 17+, copy driver) holds only what changed since this earlier
   * base of the same history; restoring it combines the chain (pg_combinebackup).
   */
  parentBaseId?: string;
  /** Incrementals between it and its full base: 0 for a full base. */
  chainLength?: number;
}

/** A full base after this many incrementals on top of each other (the default): bounds a restore's combine. */
export const INCREMENTAL_CHAIN_MAX = 6;
/** The most any configuration may chain. */
const CHAIN_LIMIT = 30;

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
  chainMax = INCREMENTAL_CHAIN_MAX,
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
  const source = { dataDir, running, socketDir: compute?.socketDir ?? '', port: compute?.port ?? 0 };
  const parent = driver === 'copy' && running && pg.major >= 17 && chainMax > 0 ? await incrementalParent(layout, branchId, historyId, chainMax) : undefined;
  let taken: { lsn: string; endLsn: string } | undefined;
  if (parent) {
    try {
      taken = await takeBase(pg, driver, source, dir, long, path.join(layout.baseDir(branchId, historyId, parent.baseId), 'backup_manifest'));
    } catch (err) {
      // The server's WAL summaries do not reach back to the parent (summarize_wal was off then,
      // or they were removed): a full base instead (takeBase removed the partial one).
      if (long.signal?.aborted) throw err;
    }
  }
  const { lsn, endLsn } = taken ?? (await takeBase(pg, driver, source, dir, long));
  const incremental = taken ? parent : undefined;
  const info: BaseInfo = {
    baseId,
    branchId,
    historyId,
    driver,
    startLsn: lsn,
    endLsn,
    timeline: await controlTimeline(pgs, dir),
    takenAt: new Date().toISOString(),
    ...(incremental ? { parentBaseId: incremental.baseId, chainLength: (incremental.chainLength ?? 0) + 1 } : { chainLength: 0 }),
  };
  await writeFileAtomic(baseInfoFile(dir), JSON.stringify(info), undefined);
  return info;
}

/** The bases of a history on this host, as recorded next to them. */
async function historyBases(layout: HostLayout, branchId: string, historyId: string): Promise<BaseInfo[]> {
  const dir = layout.historyBasesDir(branchId, historyId);
  const out: BaseInfo[] = [];
  for (const f of (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'))) {
    const info = await readBase(path.join(dir, f.slice(0, -'.json'.length)));
    if (info) out.push(info);
  }
  return out;
}

/**
 * What a new base can build on: the history's newest base, when it was taken by pg_basebackup
 * (it has a manifest; a copy of a stopped compute has none) and its chain is not at the limit.
 * Retention always keeps the newest base of the current history, so it stays while this runs.
 */
async function incrementalParent(layout: HostLayout, branchId: string, historyId: string, chainMax: number): Promise<BaseInfo | undefined> {
  const newest = (await historyBases(layout, branchId, historyId)).sort((a, b) => compareLsn(b.endLsn, a.endLsn))[0];
  if (!newest || (newest.chainLength ?? 0) >= chainMax) return undefined;
  const manifest = path.join(layout.baseDir(branchId, historyId, newest.baseId), 'backup_manifest');
  return (await exists(manifest)) ? newest : undefined;
}

/** The base directories a restore from this base reads: its full base first, itself last. */
export async function baseChain(layout: HostLayout, branchId: string, historyId: string, baseId: string): Promise<string[]> {
  const chain: string[] = [];
  for (let id: string | undefined = baseId; id; ) {
    const dir = layout.baseDir(branchId, historyId, id);
    const info = await readBase(dir);
    if (!info) throw new Error(`base ${id} of branch ${branchId} (history ${historyId}) is not on this host${chain.length ? `: the chain of base ${baseId} is broken` : ''}`);
    chain.unshift(dir);
    if (chain.length > CHAIN_LIMIT + 1) throw new Error(`the chain of base ${baseId} is longer than ${CHAIN_LIMIT + 1}`);
    id = info.parentBaseId;
  }
  return chain;
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
  const bases = layout.historyBasesDir(branchId, historyId);
  for (const b of await fsp.readdir(bases).catch(() => [] as string[])) {
    if (!b.endsWith('.json')) await removeBase(layout, branchId, historyId, b);
  }
  await fsp.rm(bases, { recursive: true, force: true });
  await fsp.rm(archiveDir(layout, { branchId, historyId }), { recursive: true, force: true });
}
