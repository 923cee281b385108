import { promises as fsp } from 'node:fs';
import { spawn, ChildProcess, StdioOptions } from 'node:child_process';
import type { HostLayout } from './layout';
import type { PgInstalls } from './pgInstalls';
import { pgBin, PgInstall, withSystemClient } from './cluster';
import { groupAlive, killGroup } from './exec';
import { writeFileAtomic } from './fs';
import { DumpProgress, DumpProgressReader } from './dumpProgress';
import { TlsTunnel } from './tlsTunnel';
import { classifyConnectError, inspectSource, ImportTargetFacts, sourceClient, SourceError, SourceInspection, tunnelTarget } from './sourceInspect';
import { redactDsn, scrubSecret, SourceDsn } from '../domain/sourceDsn';
import { USER_ROLE } from '../domain/roles';
import { createExtensionSql, PLATFORM_EXTENSIONS } from '../domain/pgsql/extensions';

type StdioOption = Exclude<StdioOptions, string>[number];

/** pv (Debian's package, installed by the setup), found on PATH. */
const PV = 'pv';

/** Extensions every new cluster has (plpgsql by initdb, pg_stat_statements by the role bootstrap). */
export const PREINSTALLED_EXTENSIONS = ['plpgsql', 'pg_stat_statements'] as const;

/**
 * pg_dump's options. Plain SQL, streamed into psql as the user's role:
 * - no owners, no grants: every object ends up owned by cloud_admin, who loads it; the source's
 *   roles do not exist here;
 * - no publications or subscriptions (a subscription would connect back to the source, and needs
 *   a superuser), no security labels, no tablespaces (the platform has none);
 * - the extensions every new cluster already has are left out, with their comments (which only
 *   their owner, the platform's superuser, may set). pg_dump 17 and later exclude them by name;
 *   older ones can only include by name: the source's other extensions.
 */
export function pgDumpArgs(toolsMajor: number, sourceExtensions: string[], platformCreated: readonly string[] = []): string[] {
  const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
  // Left out of the dump: what every cluster has, and what the platform creates before the load
  // (their CREATE and COMMENT need a superuser); objects that use them are dumped as usual.
  const leaveOut = [...PREINSTALLED_EXTENSIONS, ...platformCreated.filter((x) => sourceExtensions.includes(x))];
  let extensions: string[];
  if (toolsMajor >= 17) {
    extensions = leaveOut.map((x) => `--exclude-extension=${quote(x)}`);
  } else {
    // An include list that matches nothing is an error, so plpgsql (built in: never dumped, even
    // when named) keeps it from being empty.
    const include = sourceExtensions.filter((x) => x === 'plpgsql' || !leaveOut.includes(x));
    extensions = include.map((x) => `--extension=${quote(x)}`);
  }
  return ['--format=plain', '--no-owner', '--no-privileges', '--no-publications', '--no-subscriptions', '--no-security-labels', '--no-tablespaces', ...extensions];
}

export class ImportError extends Error {
  constructor(
    message: string,
    /** What failed: the source connection (classified), the dump, or the load into the target. */
    readonly stage: 'connect' | 'dump' | 'load',
    readonly sourceError?: SourceError,
  ) {
    super(message);
  }
}

export interface ImportTarget {
  endpointId: string;
  branchId: string;
  port: number;
  /** cloud_admin's password on the new branch. */
  password: string;
}

export interface ImportOptions {
  signal?: AbortSignal;
  /**
   * False on a retry of the same import: what an earlier attempt loaded is dropped first (the
   * database is made again, empty), so the load never meets its own half.
   */
  fresh?: boolean;
}

export interface ImportResult {
  bytes: number;
  objects: number;
  /** Whether the source was read over TLS. */
  tls: boolean;
}

/** A minimal environment for the client programs: nothing of ours (no PG* of the platform). */
function clientEnv(vars: Record<string, string | undefined>, user: PgInstall['user']): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    HOME: user ? '/tmp' : process.env.HOME,
    ...(user ? { USER: user.name } : {}),
    PGPASSFILE: '/dev/null',
    PGSYSCONFDIR: '/nonexistent',
    PGSSLMODE: 'disable',
    PGGSSENCMODE: 'disable',
    PGCONNECT_TIMEOUT: '30',
  };
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[k] = v;
  return env;
}

interface Running {
  abort: AbortController;
  done: Promise<unknown>;
}

/**
 * Imports of external databases into branches of this host: `pg_dump | pv | psql`, streamed from
 * program to program with no file of the dump anywhere (pv counts the bytes, pg_dump's verbose log
 * names the objects). The source is reached through a TLS tunnel (the client tools may have no
 * TLS); the target is the branch's compute on its private socket, as the user's role, never as
 * a superuser: the dump is the user's SQL.
 */
export class DatabaseImports {
  private readonly progressByBranch = new Map<string, DumpProgress>();
  private readonly running = new Map<string, Running>();

  constructor(
    readonly layout: HostLayout,
    readonly pgs: PgInstalls,
  ) {}

  /** The live progress of the branch's import, for heartbeats. */
  progress(branchId: string): DumpProgress | undefined {
    const p = this.progressByBranch.get(branchId);
    return p && { ...p };
  }

  /** What the target branch's major offers, for inspections. */
  async targetFacts(major: number): Promise<ImportTargetFacts> {
    return { major, extensions: await this.pgs.availableExtensions(major), preinstalled: PREINSTALLED_EXTENSIONS, platformCreated: PLATFORM_EXTENSIONS };
  }

  /** Checks a source against a target major (the API's validate, and the import's first step). */
  async inspect(dsn: SourceDsn, targetMajor: number): Promise<SourceInspection> {
    return inspectSource(dsn, await this.targetFacts(targetMajor), { user: this.pgs.clientTools.user });
  }

  /** Names the process groups of an import in progress, so a later attempt can stop them. */
  private lockFile(branchId: string): string {
    return `${this.layout.branchDataDir(branchId)}.importing`;
  }

  /**
   * Stops what an earlier attempt of the branch's import left running: one in this process (a
   * retry after a heartbeat timeout while it still ran), or the programs of a worker that died.
   */
  async stopEarlier(branchId: string): Promise<void> {
    const earlier = this.running.get(branchId);
    if (earlier) {
      earlier.abort.abort();
      await earlier.done.catch(() => undefined);
    }
    await this.stopLeftPrograms(branchId);
  }

  /** The programs named by the branch's .importing file (an attempt whose worker died). */
  private async stopLeftPrograms(branchId: string): Promise<void> {
    const lock = await fsp.readFile(this.lockFile(branchId), 'utf8').then((t) => JSON.parse(t) as { pgids?: number[] }).catch(() => undefined);
    for (const pgid of lock?.pgids ?? []) if (groupAlive(pgid)) await killGroup(pgid);
    await fsp.rm(this.lockFile(branchId), { force: true });
  }

  /**
   * The client tools of the target's major. pg_dump must be at least the source's major (a newer
   * source is refused: see checkCompatibility) and writes SQL for its own major: the newest
   * pg_dump's output does not load into an older server (pg_dump 18 sets transaction_timeout,
   * which 15 does not know).
   */
  async toolsFor(target: ImportTarget): Promise<PgInstall> {
    return this.pgs.forDataDir(this.layout.branchDataDir(target.branchId));
  }

  async run(dsn: SourceDsn, target: ImportTarget, o: ImportOptions = {}): Promise<ImportResult> {
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    if (o.signal?.aborted) abort.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    // Registered before anything is awaited, so attempts on one branch run one after the other:
    // each stops the one before it (and what a dead worker left) first.
    const earlier = this.running.get(target.branchId);
    const done = (async () => {
      if (earlier) {
        earlier.abort.abort();
        await earlier.done.catch(() => undefined);
      }
      await this.stopLeftPrograms(target.branchId);
      return this.runOnce(dsn, target, o.fresh ?? true, abort.signal);
    })();
    this.running.set(target.branchId, { abort, done });
    try {
      return await done;
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      if (this.running.get(target.branchId)?.done === done) this.running.delete(target.branchId);
    }
  }

  /** The source's extensions, read through the tunnel (pg_dump before 17 needs their names). */
  private async sourceExtensions(tunnel: TlsTunnel, dsn: SourceDsn): Promise<string[]> {
    let client;
    try {
      client = await sourceClient(tunnel, dsn, tunnel.target.connectTimeoutMs);
      return (await client.query<{ extname: string }>('SELECT extname FROM pg_extension ORDER BY 1')).rows.map((r) => r.extname);
    } catch (err) {
      const se = classifyConnectError(err, tunnel, dsn);
      throw new ImportError(`could not read the source: ${se.message}`, 'connect', se);
    } finally {
      await client?.end().catch(() => undefined);
    }
  }

  /** Drops and makes again the (empty) database the import fills. */
  private async recreateDatabase(target: ImportTarget): Promise<void> {
    const socketDir = this.layout.socketDir(target.endpointId);
    await withSystemClient(
      socketDir,
      target.port,
      async (c) => {
        await c.query('DROP DATABASE IF EXISTS postgres WITH (FORCE)');
        await c.query(`CREATE DATABASE postgres OWNER ${c.escapeIdentifier(USER_ROLE)}`);
      },
      'template1',
    );
    await withSystemClient(socketDir, target.port, (c) => c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements'));
  }

  private async runOnce(dsn: SourceDsn, target: ImportTarget, fresh: boolean, signal: AbortSignal): Promise<ImportResult> {
    const tools = await this.toolsFor(target);
    const secrets = [dsn.password, target.password];
    const scrub = (s: string) => scrubSecret(s, secrets);
    const cancelled = () => new ImportError('the import was cancelled', 'dump');
    if (signal.aborted) throw cancelled();
    if (!fresh) await this.recreateDatabase(target);
    if (signal.aborted) throw cancelled();
    const reader = new DumpProgressReader();
    this.progressByBranch.set(target.branchId, reader.progress);
    const tunnel = await TlsTunnel.open(tunnelTarget(dsn), { user: tools.user });
    const children: ChildProcess[] = [];
    const killAll = () => children.forEach(killQuietly);
    try {
      const extensions = await this.sourceExtensions(tunnel, dsn);
      if (signal.aborted) throw cancelled();
      // The platform's own part: extensions cloud_admin may not create, made before the load.
      const platformMade = PLATFORM_EXTENSIONS.filter((x) => extensions.includes(x) && !(PREINSTALLED_EXTENSIONS as readonly string[]).includes(x));
      if (platformMade.length) {
        await withSystemClient(this.layout.socketDir(target.endpointId), target.port, async (c) => {
          for (const x of platformMade) await c.query(createExtensionSql(x).text);
        });
      }
      const spawnTool = (file: string, args: string[], env: NodeJS.ProcessEnv, stdio: StdioOption[]) => {
        const child = spawn(file, args, {
          uid: tools.user?.uid,
          gid: tools.user?.gid,
          env,
          cwd: '/',
          // Its own process group: a cancellation kills it and anything it started.
          detached: true,
          stdio,
        });
        children.push(child);
        return child;
      };
      // pg_dump → pv → psql, each pipe handed from one program to the next: the dump never
      // passes through this process (which would cost it a copy of every byte, and CPU the
      // programs and both servers need). pv counts the bytes (with splice(2): no copy either).
      const psql = spawnTool(
        pgBin(tools, 'psql'),
        ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-o', '/dev/null'],
        clientEnv(
          {
            PGHOST: this.layout.socketDir(target.endpointId),
            PGPORT: String(target.port),
            PGUSER: USER_ROLE,
            PGDATABASE: 'postgres',
            PGPASSWORD: target.password,
            PGAPPNAME: 'lampion-import',
          },
          tools.user,
        ),
        ['pipe', 'ignore', 'pipe'],
      );
      const counter = spawnTool(PV, ['-n', '-b', '-f', '-i', '0.5'], clientEnv({}, tools.user), ['pipe', psql.stdin!, 'pipe']);
      psql.stdin!.destroy();
      // A source read in plain (sslmode=disable, or prefer/allow and no TLS offered) needs no
      // tunnel: pg_dump reads it straight, one hop fewer for every byte. TLS goes through it.
      const direct = tunnel.usedTls === false;
      const dump = spawnTool(
        pgBin(tools, 'pg_dump'),
        [...pgDumpArgs(tools.major, extensions, PLATFORM_EXTENSIONS), '--verbose'],
        clientEnv(
          {
            PGHOST: direct ? dsn.host : tunnel.dir,
            PGPORT: String(direct ? dsn.port : tunnel.port),
            PGCONNECT_TIMEOUT: String(Math.ceil(tunnelTarget(dsn).connectTimeoutMs / 1000)),
            PGUSER: dsn.user,
            PGDATABASE: dsn.database,
            PGPASSWORD: dsn.password,
            PGAPPNAME: dsn.applicationName ?? 'lampion-import',
          },
          tools.user,
        ),
        ['ignore', counter.stdin!, 'pipe'],
      );
      counter.stdin!.destroy();
      await writeFileAtomic(this.lockFile(target.branchId), JSON.stringify({ pgids: children.map((c) => c.pid).filter(Boolean) }), undefined);
      signal.addEventListener('abort', killAll, { once: true });

      const stderrOf = (c: ChildProcess) => {
        let text = '';
        c.stderr!.on('data', (d: Buffer) => {
          text = (text + d.toString('utf8')).slice(-16_384);
        });
        return () => text;
      };
      dump.stderr!.setEncoding('utf8').on('data', (d: string) => reader.dumpLog(d));
      counter.stderr!.setEncoding('utf8').on('data', (d: string) => reader.byteCount(d));
      const psqlErr = stderrOf(psql);
      const exited = (c: ChildProcess) =>
        new Promise<number | string>((resolve) => {
          c.once('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? 'spawn error'));
          c.once('close', (code, sig) => resolve(code ?? sig ?? 'killed'));
        });
      const [dumpExit, counterExit, psqlExit] = [exited(dump), exited(counter), exited(psql)];
      // Whichever fails first is the cause; the others are stopped (psql gone: pg_dump has nobody
      // to write to; pg_dump gone: psql must not commit what it read so far as if it were all).
      // pv fails only when psql is gone (or pv cannot run): a failure of the load.
      let firstFailed: 'dump' | 'load' | undefined;
      void psqlExit.then((code) => {
        if (code === 0) return;
        firstFailed ??= 'load';
        killQuietly(counter);
        killQuietly(dump);
      });
      void counterExit.then((code) => {
        if (code === 0) return;
        firstFailed ??= 'load';
        killQuietly(dump);
        killQuietly(psql);
      });
      void dumpExit.then((code) => {
        if (code === 0) return;
        firstFailed ??= 'dump';
        killQuietly(counter);
        killQuietly(psql);
      });
      const [dc, cc, pc] = await Promise.all([dumpExit, counterExit, psqlExit]);
      if (signal.aborted) throw cancelled();
      // Where the socket is says nothing to the user; the source does.
      const readable = (s: string) =>
        scrub(
          s
            .split(`on socket "${tunnel.socketPath}"`)
            .join(`at "${dsn.host}", port ${dsn.port}`)
            .split(tunnel.dir)
            .join(`${dsn.host}:${dsn.port}`)
            .trim(),
        );
      // A dump killed by SIGPIPE lost its reader: the load failed first, whichever exit was seen first.
      const loadFirst = firstFailed === 'load' || (String(dc) === 'SIGPIPE' && pc !== 0);
      if (cc !== 0 && loadFirst && pc === 0) throw new ImportError(`counting the dump's bytes failed (${PV}: ${cc})`, 'load');
      if (pc !== 0 && loadFirst) throw new ImportError(`loading the dump into the branch failed: ${lastLines(readable(psqlErr()))}`, 'load');
      if (dc !== 0) {
        if (tunnel.lastFailure) {
          const se = classifyConnectError(new Error(tunnel.lastFailure.message), tunnel, dsn);
          throw new ImportError(`could not read the source: ${se.message}`, 'connect', se);
        }
        const text = readable(reader.dumpMessages());
        const se = /connection to server .* failed/.test(text) ? classifyConnectError(Object.assign(new Error(text), { code: sqlstateIn(text) }), tunnel, dsn) : undefined;
        throw new ImportError(`pg_dump of ${redactDsn(dsn)} failed (${dc}): ${lastLines(text)}`, se ? 'connect' : 'dump', se);
      }
      if (pc !== 0) throw new ImportError(`loading the dump into the branch failed: ${lastLines(readable(psqlErr()))}`, 'load');
      return { bytes: reader.progress.bytesDone, objects: reader.progress.objectsDone, tls: tunnel.usedTls === true };
    } finally {
      signal.removeEventListener('abort', killAll);
      killAll();
      await Promise.all(children.map((c) => (c.pid ? killGroup(c.pid, 5000) : undefined)));
      await tunnel.close();
      await fsp.rm(this.lockFile(target.branchId), { force: true });
      this.progressByBranch.delete(target.branchId);
    }
  }
}

/** SIGKILL to the child's process group, if it is still there. */
function killQuietly(c: ChildProcess): void {
  try {
    if (c.pid) process.kill(-c.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** The SQLSTATE libpq-based tools do not print; recognizable messages stand in for it. */
function sqlstateIn(text: string): string | undefined {
  if (/password authentication failed/.test(text)) return '28P01';
  if (/no pg_hba\.conf entry/.test(text)) return '28000';
  if (/database ".*" does not exist/.test(text)) return '3D000';
  return undefined;
}

function lastLines(text: string, n = 6): string {
  return text.split('\n').filter((l) => l.trim()).slice(-n).join(' | ').slice(-2000);
}
