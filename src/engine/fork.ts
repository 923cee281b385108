import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { run, runLong, CommandError, LongRunOptions } from './exec';
import { exists } from './fs';
import { PgInstall, SYSTEM_ROLE, pgBin, withSystemClient } from './cluster';
import { StorageDriver, removeDataDir } from './storage';
import { LSN_PATTERN } from '../domain/lsn';

export { detectDriver } from './storage';
export type { StorageDriver } from './storage';

/** The parent of a fork. socketDir/port reach the running parent as the platform superuser. */
export interface ForkSource {
  dataDir: string;
  running: boolean;
  socketDir: string;
  port: number;
}

/** Large branches take long to copy; the caller (a Temporal activity) bounds the real duration. */
const COPY_TIMEOUT_MS = 6 * 3600_000;

const LSN = LSN_PATTERN;

/**
 * A copy-on-write (btrfs) or full (copy) clone of a branch's data directory that can be started
 * beside the parent. The returned LSN is a lower bound of what the child contains: every
 * transaction the parent committed at or below it is in the child. `endLsn` is an upper bound:
 * nothing the parent wrote after it is in the child, so recovery of the copy to any target at or
 * past it is consistent (what a base backup needs).
 */
export async function forkDataDir(
  pg: PgInstall,
  driver: StorageDriver,
  source: ForkSource,
  childDir: string,
  /** Cancellation and the copy's process group (for a later attempt to find it). */
  long: Pick<LongRunOptions, 'signal' | 'onSpawn'> = {},
): Promise<{ lsn: string; endLsn: string }> {
  if (await exists(childDir)) throw new Error(`cannot fork into ${childDir}: it already exists`);
  if (!(await exists(path.join(source.dataDir, 'PG_VERSION')))) {
    throw new Error(`cannot fork ${source.dataDir}: not a Postgres data directory`);
  }
  await refuseTablespaces(source.dataDir);
  try {
    const { lsn, endLsn } = driver === 'btrfs' ? await forkBtrfs(pg, source, childDir) : await forkCopy(pg, source, childDir, long);
    if (!LSN.test(lsn) || !LSN.test(endLsn)) throw new Error(`fork of ${source.dataDir} produced an unreadable LSN "${lsn}"/"${endLsn}"`);
    await makeStartable(pg, childDir);
    return { lsn, endLsn };
  } catch (err) {
    await removeDataDir(childDir).catch(() => undefined);
    throw err;
  }
}

type ForkLsns = { lsn: string; endLsn: string };

/**
 * A snapshot or cp copies pg_tblspc's symlinks as they are: the child would write into the
 * parent's tablespaces. Lampion never creates any (it takes a superuser), so refuse outright.
 */
async function refuseTablespaces(dataDir: string): Promise<void> {
  const tablespaces = await fsp.readdir(path.join(dataDir, 'pg_tblspc')).catch(() => [] as string[]);
  if (tablespaces.length) throw new Error(`cannot copy ${dataDir}: it has tablespaces (${tablespaces.join(', ')})`);
}

/**
 * A base backup of a branch: a read-only snapshot (btrfs) or a pg_basebackup / copy (copy
 * driver), kept as taken. Restoring it is a fork of the base (forkDataDir with a stopped source)
 * followed by WAL replay to a target at or past `endLsn`.
 */
export async function takeBase(
  pg: PgInstall,
  driver: StorageDriver,
  source: ForkSource,
  baseDir: string,
  long: Pick<LongRunOptions, 'signal' | 'onSpawn'> = {},
  /** The manifest of an earlier base of the same history: only what changed since is copied (17+, running, copy driver). */
  incrementalFrom?: string,
): Promise<{ lsn: string; endLsn: string }> {
  if (await exists(baseDir)) throw new Error(`cannot take a base into ${baseDir}: it already exists`);
  await refuseTablespaces(source.dataDir);
  try {
    return driver === 'btrfs' ? await forkBtrfs(pg, source, baseDir, true) : await forkCopy(pg, source, baseDir, long, incrementalFrom);
  } catch (err) {
    await removeDataDir(baseDir).catch(() => undefined);
    throw err;
  }
}

async function forkBtrfs(pg: PgInstall, source: ForkSource, childDir: string, readOnly = false): Promise<ForkLsns> {
  const snapshot = ['subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), source.dataDir, childDir];
  if (!source.running) {
    await run('btrfs', snapshot);
    // Read from the child, not the parent: the parent may be started between the two steps.
    const lsn = await checkpointLsn(pg, childDir);
    return { lsn, endLsn: lsn };
  }
  // The checkpoint bounds the child's crash recovery to the WAL written during the fork.
  const lsn = await withSystemClient(source.socketDir, source.port, async (c) => {
    await c.query('CHECKPOINT');
    return (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  });
  // A snapshot is atomic and flushes the subvolume's dirty pages first, so WAL written before the
  // LSN was read is in the child: the same state a power cut would leave.
  await run('btrfs', snapshot);
  const endLsn = await withSystemClient(source.socketDir, source.port, async (c) => (await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn);
  return { lsn, endLsn };
}

async function forkCopy(pg: PgInstall, source: ForkSource, childDir: string, long: Pick<LongRunOptions, 'signal' | 'onSpawn'>, incrementalFrom?: string): Promise<ForkLsns> {
  if (incrementalFrom && !source.running) throw new Error('an incremental base needs a running compute (its WAL summaries)');
  if (source.running) {
    await runLong(
      pgBin(pg, 'pg_basebackup'),
      [
        '-D', childDir,
        '-h', source.socketDir,
        '-p', String(source.port),
        '-U', SYSTEM_ROLE,
        '-X', 'stream',
        '-c', 'fast',
        '--no-sync',
        // The manifest is read only for its WAL range; file checksums would cost a pass over the data.
        '--manifest-checksums=NONE',
        '-w',
        ...(incrementalFrom ? [`--incremental=${incrementalFrom}`] : []),
      ],
      { user: pg.user, timeoutMs: COPY_TIMEOUT_MS, ...long },
    );
    // One syncfs instead of pg_basebackup's fsync of every file; seconds for a large copy, so
    // cancellable too.
    await runLong('sync', ['-f', childDir], { signal: long.signal });
    const lsn = await backupLsn(childDir);
    return { lsn, endLsn: lsn };
  }
  await copyTree(pg, source.dataDir, childDir, long);
  await run('sync', ['-f', childDir]);
  const lsn = await checkpointLsn(pg, childDir);
  return { lsn, endLsn: lsn };
}

/**
 * A full data dir from a chain of bases (a full one, then incrementals, oldest first) with
 * pg_combinebackup (17+), startable like a fork of a stopped source: it recovers from the last
 * base's backup_label, reading WAL from the archive.
 */
export async function combineBases(pg: PgInstall, chain: string[], childDir: string, long: Pick<LongRunOptions, 'signal' | 'onSpawn'> = {}): Promise<{ lsn: string; endLsn: string }> {
  if (await exists(childDir)) throw new Error(`cannot combine into ${childDir}: it already exists`);
  try {
    // Into a directory it creates; one syncfs afterwards instead of its per-file fsync.
    await runLong(pgBin(pg, 'pg_combinebackup'), ['-o', childDir, '--no-sync', '--', ...chain], { user: pg.user, timeoutMs: COPY_TIMEOUT_MS, ...long });
    await runLong('sync', ['-f', childDir], { signal: long.signal });
    const lsn = await backupLsn(childDir);
    await makeStartable(pg, childDir);
    return { lsn, endLsn: lsn };
  } catch (err) {
    await removeDataDir(childDir).catch(() => undefined);
    throw err;
  }
}

/** As the compute user, so the copy is owned by it whether or not we run as root. */
async function copyTree(pg: PgInstall, from: string, to: string, long: Pick<LongRunOptions, 'signal' | 'onSpawn'>): Promise<void> {
  try {
    await runLong('cp', ['-a', '--reflink=auto', '--', from, to], { user: pg.user, timeoutMs: COPY_TIMEOUT_MS, ...long });
  } catch (err) {
    // A cp without reflink support (busybox, old coreutils) still makes a correct, slower copy.
    if (!(err instanceof CommandError) || !/reflink/.test(err.stderr)) throw err;
    await removeDataDir(to);
    await runLong('cp', ['-a', '--', from, to], { user: pg.user, timeoutMs: COPY_TIMEOUT_MS, ...long });
  }
}

/** The checkpoint a stopped cluster would start from; for a clean shutdown, its last record. */
async function checkpointLsn(pg: PgInstall, dataDir: string): Promise<string> {
  // Debian's binaries are translated; the label is only stable in the C locale.
  const { stdout } = await run(pgBin(pg, 'pg_controldata'), ['-D', dataDir], {
    user: pg.user,
    env: { LC_ALL: 'C', LANG: 'C', LANGUAGE: '' },
  });
  const m = /^Latest checkpoint location:\s*(\S+)\s*$/m.exec(stdout);
  if (!m) throw new Error(`pg_controldata -D ${dataDir} printed no checkpoint location`);
  return m[1];
}

/**
 * The end of the backup's WAL range: the child is consistent there and holds everything committed
 * up to it. START WAL LOCATION (backup_label) is only the checkpoint the backup began with, a
 * looser bound that misses what was committed during the copy; it serves when there is no manifest.
 */
async function backupLsn(dataDir: string): Promise<string> {
  try {
    const manifest = JSON.parse(await fsp.readFile(path.join(dataDir, 'backup_manifest'), 'utf8')) as {
      'WAL-Ranges'?: { 'End-LSN'?: string }[];
    };
    const end = manifest['WAL-Ranges']?.at(-1)?.['End-LSN'];
    if (end && LSN.test(end)) return end;
  } catch {
    // fall through to backup_label
  }
  const label = await fsp.readFile(path.join(dataDir, 'backup_label'), 'utf8');
  const m = /^START WAL LOCATION:\s*(\S+)/m.exec(label);
  if (!m) throw new Error(`no START WAL LOCATION in ${path.join(dataDir, 'backup_label')}`);
  return m[1];
}

/**
 * A snapshot or copy carries the parent's lock file (its PID is alive, so postgres would refuse
 * to start), and may carry signal files that would turn the child into a standby.
 * backup_label must stay: a pg_basebackup child recovers from the checkpoint it names.
 */
async function makeStartable(pg: PgInstall, dir: string): Promise<void> {
  for (const f of ['postmaster.pid', 'postmaster.opts', 'standby.signal', 'recovery.signal', 'backup_manifest']) {
    await fsp.rm(path.join(dir, f), { force: true });
  }
  // The parent's replication slots have no consumer in the child and would pin its WAL forever
  // (pg_basebackup leaves them out too).
  const slots = path.join(dir, 'pg_replslot');
  for (const slot of await fsp.readdir(slots).catch(() => [] as string[])) {
    await fsp.rm(path.join(slots, slot), { recursive: true, force: true });
  }
  await fsp.chmod(dir, 0o700);
  if (pg.user) await fsp.chown(dir, pg.user.uid, pg.user.gid);
}
