import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { HostLayout } from './layout';
import { ensureOwnedDir, exists, writeFileAtomic } from './fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { run, OsUser } from './exec';
import { PgInstall, pgBin, withSystemClient } from './cluster';
import { compareLsn, walFileName } from '../domain/lsn';

/**
 * A branch's data dir names the history it writes: a fresh cluster or a fork starts a new one,
 * so a reset or in-place restore never mixes its WAL with the history it replaced (forks share
 * system identifier and timeline, and segment names would collide). The archive of each history
 * is its own directory; the old ones stay, so a restore to before a reset still finds its WAL.
 */
const HISTORY_FILE = '.lampion-history';

export interface HistoryRef {
  branchId: string;
  historyId: string;
}

export function newHistoryId(): string {
  return `h${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

export async function readHistoryId(dataDir: string): Promise<string | undefined> {
  try {
    const id = (await fsp.readFile(path.join(dataDir, HISTORY_FILE), 'utf8')).trim();
    return /^h[0-9a-z]+$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a new history in the data dir (after initdb or a fork). */
export async function startHistory(dataDir: string, user: OsUser | undefined, historyId = newHistoryId()): Promise<string> {
  await writeFileAtomic(path.join(dataDir, HISTORY_FILE), `${historyId}\n`, user);
  return historyId;
}

/** The history the data dir writes; data dirs from before histories get one at their next start. */
export async function ensureHistory(dataDir: string, user: OsUser | undefined): Promise<string> {
  return (await readHistoryId(dataDir)) ?? startHistory(dataDir, user);
}

export function archiveDir(layout: HostLayout, h: HistoryRef): string {
  return path.join(layout.walArchiveDir(h.branchId), h.historyId);
}

export async function ensureArchiveDir(layout: HostLayout, h: HistoryRef, user: OsUser | undefined): Promise<string> {
  await ensureOwnedDir(layout.walArchiveDir(h.branchId), user, 0o700);
  const dir = archiveDir(layout, h);
  await ensureOwnedDir(dir, user, 0o700);
  return dir;
}

/** Postgres's own basic_archive module: atomic, fsynced, refuses to overwrite a segment with different content. */
export function archiveSettings(dir: string): Record<string, string> {
  return { archive_mode: 'on', archive_library: 'basic_archive', 'basic_archive.archive_directory': dir };
}

/** How recovery reads the history's archived segments (basic_archive has no restore side). */
export function restoreCommand(dir: string): string {
  return `cp '${dir.replace(/'/g, `'\\''`)}/%f' '%p'`;
}

/** Whether the segment holding `lsn` (on `timeline`) is in the archive. */
export async function segmentArchived(dir: string, timeline: number, lsn: string): Promise<boolean> {
  return exists(path.join(dir, walFileName(timeline, lsn)));
}

/**
 * Written into the archive when a compute stops cleanly: everything up to this LSN is archived
 * (the stop switches to a new segment first). A stopped branch's history ends here.
 */
const END_FILE = 'lampion-archived-end';

export async function writeArchivedEnd(dir: string, lsn: string, user: OsUser | undefined): Promise<void> {
  await writeFileAtomic(path.join(dir, END_FILE), `${lsn}\n`, user);
}

export async function clearArchivedEnd(dir: string): Promise<void> {
  await fsp.rm(path.join(dir, END_FILE), { force: true });
}

/**
 * Makes the archive reach the current position: reads the insert LSN, writes a named restore
 * point (a record at or past it, which a restore to that LSN needs to find) and switches to a new
 * segment, so the one holding both is archived. Undefined on a standby (no WAL of its own).
 */
export async function switchSegment(socketDir: string, port: number, restorePoint: string): Promise<{ lsn: string; timeline: number } | undefined> {
  return withSystemClient(socketDir, port, async (c) => {
    const r = await c.query<{ lsn: string; tli: number; standby: boolean }>(
      'SELECT pg_is_in_recovery() AS standby, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS lsn, (SELECT timeline_id FROM pg_control_checkpoint()) AS tli',
    );
    if (r.rows[0].standby) return undefined;
    await c.query('SELECT pg_create_restore_point($1)', [restorePoint]);
    await c.query('SELECT pg_switch_wal()');
    // The checkpoint's timeline can lag a promotion by one checkpoint; the insert position's file name cannot.
    const tli = await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS f');
    return { lsn: r.rows[0].lsn, timeline: Number.parseInt(tli.rows[0].f.slice(0, 8), 16) };
  });
}

/** Waits until the archive holds the segment with `lsn`, or throws with what pg_stat_archiver says. */
export async function waitArchived(socketDir: string, port: number, dir: string, timeline: number, lsn: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await segmentArchived(dir, timeline, lsn))) {
    if (Date.now() > deadline) {
      const why = await withSystemClient(socketDir, port, async (c) => (await c.query('SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver')).rows[0]).catch(() => undefined);
      throw new Error(`WAL segment ${walFileName(timeline, lsn)} was not archived within ${timeoutMs / 1000} s (last failure: ${why?.last_failed_wal ?? 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** pg_stat_archiver of a running compute: failures show here (and WAL is kept until archived). */
export async function archiverStats(socketDir: string, port: number) {
  return withSystemClient(socketDir, port, async (c) => {
    const r = await c.query(
      `SELECT archived_count::int, last_archived_wal, last_archived_time, failed_count::int, last_failed_wal, last_failed_time FROM pg_stat_archiver`,
    );
    const row = r.rows[0];
    const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
    return {
      archived_count: row.archived_count as number,
      last_archived_wal: row.last_archived_wal as string | null,
      last_archived_at: iso(row.last_archived_time),
      failed_count: row.failed_count as number,
      last_failed_wal: row.last_failed_wal as string | null,
      last_failed_at: iso(row.last_failed_time),
      checked_at: new Date().toISOString(),
    };
  });
}

export async function readArchivedEnd(dir: string): Promise<string | undefined> {
  try {
    return (await fsp.readFile(path.join(dir, END_FILE), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface TransactionEnd {
  lsn: string;
  /** Microseconds since the epoch, as Postgres wrote it in the commit record. */
  atMicros: bigint;
  /** ISO 8601, microsecond precision, UTC. */
  at: string;
}

const WALDUMP_LINE = /lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (?:COMMIT|COMMIT_PREPARED) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?) UTC/;

export function micros(isoUtc: string): bigint {
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?/.exec(isoUtc);
  if (!m) throw new Error(`unreadable timestamp ${isoUtc}`);
  const ms = Date.parse(`${m[1]}T${m[2]}Z`);
  return BigInt(ms) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

export function isoFromMicros(us: bigint): string {
  const ms = Number(us / 1000n);
  const frac = (us % 1_000_000n).toString().padStart(6, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}

/**
 * Commit records of the archive between two LSNs, in order, read with pg_waldump (in UTC). This
 * is how a timestamp becomes an exact LSN, and how an answer names the last transaction a
 * restore kept.
 */
export async function commitsBetween(
  pg: PgInstall,
  dir: string,
  timeline: number,
  start: string,
  end: string,
  /** Stops reading once this commit is found (it is included): a forward search needs no more. */
  until?: (c: TransactionEnd) => boolean,
): Promise<TransactionEnd[]> {
  if (compareLsn(start, end) >= 0) return [];
  const out: TransactionEnd[] = [];
  // Streamed line by line: a busy history has hundreds of thousands of commits.
  const child = spawn(pgBin(pg, 'pg_waldump'), ['--path', dir, '--timeline', String(timeline), '--start', start, '--end', end, '--rmgr', 'Transaction'], {
    uid: pg.user?.uid,
    gid: pg.user?.gid,
    env: { ...process.env, TZ: 'UTC', LC_ALL: 'C', ...(pg.user ? { HOME: '/tmp' } : {}) },
    cwd: '/',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  let stopped = false;
  lines.on('line', (line) => {
    const m = WALDUMP_LINE.exec(line);
    if (!m || stopped) return;
    const atMicros = micros(m[2]);
    const c = { lsn: m[1], atMicros, at: isoFromMicros(atMicros) };
    out.push(c);
    if (until?.(c)) {
      stopped = true;
      child.kill('SIGKILL');
    }
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (stopped) return out;
  // pg_waldump reports an error where readable WAL ends before --end (the last segment's tail);
  // what it printed up to there is the history. A failure before any record is a real one.
  if (code !== 0 && !/error in WAL record|could not find a valid record|could not find file|invalid record length|incorrect prev-link/.test(stderr)) {
    throw new Error(`pg_waldump over ${dir} failed (${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return out;
}

/** Segment files of the archive, oldest first (names sort by timeline, then position). */
export async function archivedSegments(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
}

/** Removes the archive's segments older than the one holding `keepFromLsn`, with pg_archivecleanup. */
export async function pruneSegments(pg: PgInstall, dir: string, timeline: number, keepFromLsn: string): Promise<void> {
  await run(pgBin(pg, 'pg_archivecleanup'), [dir, walFileName(timeline, keepFromLsn)], { user: pg.user });
}

/** Highest timeline the archive holds segments of, or undefined when it holds none yet. */
export async function latestTimeline(dir: string): Promise<number | undefined> {
  const segs = await archivedSegments(dir);
  return segs.length ? Number.parseInt(segs[segs.length - 1].slice(0, 8), 16) : undefined;
}

export { compareLsn };
