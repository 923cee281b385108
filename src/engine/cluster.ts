import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { Client } from 'pg';
import { run, OsUser, CommandError } from './exec';
import { writeFileAtomic } from './fs';
import { postmasterPid, postmasterStatus, processEnded } from './postmaster';

/** Where the Postgres binaries are and who runs them. */
export interface PgInstall {
  /** The major (15, 18): what PG_VERSION of its data dirs says. */
  major: number;
  binDir: string;
  user?: OsUser;
  /** Absolute path of lampion_guard.so, when built; see src/engine/guard. */
  guardLibrary?: string;
}

export { SYSTEM_ROLE } from '../domain/roles';
import { SYSTEM_ROLE } from '../domain/roles';

/**
 * Users may come over the private socket too: a proxy on the compute's host relays to it, which
 * costs both sides less CPU per message than loopback TCP. Only platform processes can reach
 * the socket (0700, the compute's OS user), and the proxy refuses the platform role by name.
 */
const HBA = `# Managed by Lampion; rewritten at every start. The platform superuser is reachable only over the private socket.
local   all          ${SYSTEM_ROLE}                      trust
local   replication  ${SYSTEM_ROLE}                      trust
local   all          all                                 scram-sha-256
local   replication  all                                 scram-sha-256
host    all          ${SYSTEM_ROLE}   all                reject
host    replication  all              127.0.0.1/32       scram-sha-256
host    all          all              127.0.0.1/32       scram-sha-256
host    all          all              ::1/128            scram-sha-256
`;

/** A Postgres program of this install. */
export const pgBin = (pg: PgInstall, name: string) => path.join(pg.binDir, name);

/**
 * initdb into an existing, empty, compute-owned directory. Files are synced once with syncfs
 * instead of initdb's per-file fsync: same durability, a fraction of the time.
 */
export async function initCluster(pg: PgInstall, dataDir: string, o: { background?: boolean } = {}): Promise<void> {
  const initdb = [pgBin(pg, 'initdb'), '-D', dataDir, '-U', SYSTEM_ROLE, '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'];
  // In the background (a spare cluster) at the lowest CPU priority: it yields to every compute.
  const [file, ...args] = o.background ? ['nice', '-n', '19', ...initdb] : initdb;
  await run(file, args, { user: pg.user, timeoutMs: 120_000 });
  await writeHba(pg, dataDir);
  await fsp.appendFile(path.join(dataDir, 'postgresql.conf'), "\ninclude_if_exists = 'lampion.conf'\n");
  await run('sync', ['-f', dataDir]);
}

/** Archive recovery on the next start: a restore (to a target LSN, then promote) or a standby. */
export interface RecoverySettings {
  restoreCommand: string;
  /** Exclusive: replay stops just before the first record at or past it. */
  targetLsn?: string;
  /** Streams from this primary and stays read-only (a replica). */
  primaryConninfo?: string;
}

export interface RuntimeSettings {
  port: number;
  socketDir: string;
  /** The history's archive directory; none = no archiving (the control cluster, replicas). */
  walArchiveDir?: string;
  recovery?: RecoverySettings;
  /** Extra GUCs from sizing; values are numbers or plain identifiers only. */
  extra?: Record<string, string | number>;
}

function quoteConf(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The settings an endpoint needs, rewritten before every start: a forked data dir inherits its
 * parent's file, and the port, socket and WAL archive belong to the endpoint and branch at hand.
 */
export function renderRuntimeConf(pg: PgInstall, s: RuntimeSettings): string {
  const preload = ['pg_stat_statements', ...(pg.guardLibrary ? [pg.guardLibrary] : [])].join(',');
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    port: s.port,
    unix_socket_directories: s.socketDir,
    unix_socket_permissions: '0700',
    shared_preload_libraries: preload,
    'pg_stat_statements.track': 'all',
    wal_level: 'replica',
    max_wal_senders: 10,
    wal_keep_size: '256MB',
    hot_standby: 'on',
    // Postgres's own basic_archive: atomic, fsynced, refuses to overwrite a segment with different content.
    ...(s.walArchiveDir
      ? { archive_mode: 'on', archive_library: 'basic_archive', 'basic_archive.archive_directory': s.walArchiveDir }
      : { archive_mode: 'off' }),
    // WAL summaries let a base of a read-write compute copy only what changed since the last one (17+).
    ...(s.walArchiveDir && pg.major >= 17 ? { summarize_wal: 'on' } : {}),
    ...(s.recovery ? recoveryGucs(s.recovery) : {}),
    // A fork starts with crash recovery; syncfs makes that start ~10x faster than walking every file.
    recovery_init_sync_method: 'syncfs',
    password_encryption: 'scram-sha-256',
    log_line_prefix: '%m [%p] %q%u@%d ',
    log_connections: 'off',
    ...s.extra,
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : quoteConf(v)}`);
  return `# Managed by Lampion; rewritten at every start.\n${lines.join('\n')}\n`;
}

function recoveryGucs(r: RecoverySettings): Record<string, string> {
  return {
    restore_command: r.restoreCommand,
    recovery_target_timeline: 'latest',
    ...(r.targetLsn ? { recovery_target_lsn: r.targetLsn, recovery_target_inclusive: 'off', recovery_target_action: 'promote' } : {}),
    ...(r.primaryConninfo ? { primary_conninfo: r.primaryConninfo } : {}),
  };
}

/** Writes pg_hba.conf when it differs (data dirs made by older versions); true when it did. */
export async function writeHba(pg: PgInstall, dataDir: string): Promise<boolean> {
  const file = path.join(dataDir, 'pg_hba.conf');
  if ((await fsp.readFile(file, 'utf8').catch(() => '')) === HBA) return false;
  await writeFileAtomic(file, HBA, pg.user);
  return true;
}

export async function writeRuntimeConf(pg: PgInstall, dataDir: string, s: RuntimeSettings): Promise<void> {
  await writeFileAtomic(path.join(dataDir, 'lampion.conf'), renderRuntimeConf(pg, s), pg.user);
}

/**
 * Whether a postmaster serves this data dir: the pid in postmaster.pid is alive and its working
 * directory is the data dir (a stale file's pid may belong to another process by now). This is
 * on every start and resume, so it avoids spawning pg_ctl status unless /proc cannot tell.
 */
export async function isRunning(pg: PgInstall, dataDir: string): Promise<boolean> {
  const pm = await postmasterPid(dataDir);
  if (!pm) return false;
  if (pm.verified) return true;
  try {
    await run(pgBin(pg, 'pg_ctl'), ['status', '-D', dataDir], { user: pg.user });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts postgres and waits until it accepts connections. Idempotent. pg_ctl -w polls only every
 * 100 ms while a fork is ready in 60-85 ms, so we launch without waiting and watch the status
 * line postgres writes into postmaster.pid ourselves.
 */
export async function startCluster(pg: PgInstall, dataDir: string, logFile: string): Promise<void> {
  if (await isRunning(pg, dataDir)) return;
  const fail = async (why: string) => {
    const tail = await tailFile(logFile, 8);
    return new CommandError('pg_ctl start', null, `${why}\n${tail}`);
  };
  // A lock file left by a crashed postmaster is replaced by the new one; don't mistake it.
  const stalePid = (await postmasterStatus(dataDir))?.pid;
  // A killed postmaster that is still a zombie would make the new one refuse its lock file.
  if (stalePid !== undefined && (await processEnded(stalePid))) await fsp.rm(path.join(dataDir, 'postmaster.pid'), { force: true });
  try {
    await run(pgBin(pg, 'pg_ctl'), ['start', '-W', '-s', '-D', dataDir, '-l', logFile], { user: pg.user, timeoutMs: 30_000 });
  } catch (err) {
    throw await fail((err as Error).message);
  }
  const started = Date.now();
  let seenPid: number | undefined;
  for (;;) {
    const current = await postmasterStatus(dataDir);
    const pid = current?.pid;
    if (pid !== undefined && pid !== stalePid) {
      seenPid = pid;
      // "standby": a hot standby (a replica, or a restore before it promotes) accepting read-only connections.
      if (current!.status === 'ready' || current!.status === 'standby') return;
      if (!processAlive(pid)) throw await fail('postgres exited during startup');
    } else if (seenPid !== undefined || Date.now() - started > 10_000) {
      throw await fail('postgres exited during startup');
    }
    if (Date.now() - started > 120_000) throw await fail('postgres did not become ready within 120 s');
    await new Promise((r) => setTimeout(r, 3));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A restore's compute: postgres accepts (read-only) connections once consistent, and is the
 * branch's read-write compute once replay reached its target and it promoted.
 */
export async function waitPromoted(socketDir: string, port: number, dataDir: string, logFile: string, timeoutMs = 3600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const inRecovery = await withSystemClient(socketDir, port, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r);
      if (!inRecovery) return;
    } catch (err) {
      const pid = (await postmasterStatus(dataDir))?.pid;
      if (pid === undefined || !processAlive(pid)) throw new CommandError('recovery', null, `postgres stopped during recovery: ${(err as Error).message}\n${await tailFile(logFile, 12)}`);
    }
    if (Date.now() > deadline) throw new CommandError('recovery', null, `recovery did not finish within ${timeoutMs / 1000} s\n${await tailFile(logFile, 8)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Re-reads configuration files (SIGHUP): reloadable settings apply at once. */
export async function reloadCluster(pg: PgInstall, dataDir: string): Promise<void> {
  await run(pgBin(pg, 'pg_ctl'), ['reload', '-s', '-D', dataDir], { user: pg.user });
}

/** Fast shutdown (clients disconnected, clean checkpoint). Idempotent. */
export async function stopCluster(pg: PgInstall, dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await isRunning(pg, dataDir))) return;
  await run(pgBin(pg, 'pg_ctl'), ['stop', '-w', '-t', '120', '-s', '-m', mode, '-D', dataDir], {
    user: pg.user,
    timeoutMs: 130_000,
  });
}

export async function tailFile(file: string, lines: number): Promise<string> {
  try {
    const text = await fsp.readFile(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '';
  }
}

/** A superuser session over the endpoint's private socket. */
export async function systemClient(socketDir: string, port: number, database = 'postgres'): Promise<Client> {
  const client = new Client({ host: socketDir, port, user: SYSTEM_ROLE, database });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function withSystemClient<T>(
  socketDir: string,
  port: number,
  fn: (c: Client) => Promise<T>,
  database = 'postgres',
): Promise<T> {
  const client = await systemClient(socketDir, port, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
