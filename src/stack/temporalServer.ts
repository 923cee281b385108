import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { canConnect } from '../engine/ports';
import { SEARCH_ATTRIBUTES } from '../temporal/searchAttributes';

export interface TemporalServerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface TemporalServerOptions {
  bin: string;
  port: number;
  uiPort: number;
  dataDir: string;
  namespace: string;
  headless?: boolean;
  logger?: TemporalServerLog;
  /** Restart the server when it exits on its own (default true). */
  supervise?: boolean;
}

export interface TemporalServer {
  address: string;
  uiUrl?: string;
  /** Pid of the temporal process itself (not of its wrappers), while it runs. */
  pid(): number | undefined;
  /** Whether the server process is running and has listened since its last (re)start. */
  up(): boolean;
  /** How many times the supervisor restarted it. */
  restarts(): number;
  stop(): Promise<void>;
}

const LOCK_BUSY = 75;
const STOP_GRACE_MS = 10_000;
const LISTEN_TIMEOUT_MS = 60_000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10_000];
/** A server that ran this long before exiting restarts from the shortest backoff again. */
const STABLE_MS = 30_000;

const silent: TemporalServerLog = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function temporalFiles(dataDir: string) {
  const dir = path.join(dataDir, 'temporal');
  return {
    dir,
    db: path.join(dir, 'temporal.db'),
    lock: path.join(dir, 'temporal.lock'),
    pid: path.join(dir, 'temporal.pid'),
    log: path.join(dir, 'temporal.log'),
  };
}

function onPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(d || '.', name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function cmdline(pid: number): string[] | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead for our purposes (its files are closed).
  try {
    return !/^\S+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A process whose command line names this exact db file: a Temporal server (or its wrapper) on it. */
function usesDb(pid: number, dbFile: string): boolean {
  const args = cmdline(pid);
  if (!args) return false;
  const i = args.indexOf('--db-filename');
  return i >= 0 && args[i + 1] === dbFile;
}

/** Every process (but this one) running a Temporal server on dbFile, from the pid file and /proc. */
export function processesUsingDb(dbFile: string, pidFile?: string): number[] {
  const pids = new Set<number>();
  if (pidFile) {
    try {
      for (const s of fs.readFileSync(pidFile, 'utf8').split(/\s+/)) if (/^\d+$/.test(s)) pids.add(Number(s));
    } catch {
      // no pid file
    }
  }
  try {
    for (const e of fs.readdirSync('/proc')) if (/^\d+$/.test(e)) pids.add(Number(e));
  } catch {
    // no /proc: only the pid file
  }
  pids.delete(process.pid);
  return [...pids].filter((p) => usesDb(p, dbFile));
}

/**
 * Stops a Temporal server left running on this data dir's SQLite file by an earlier run (one
 * that was killed before it could stop it): TERM, then KILL. Only processes whose command line
 * names this db file are touched. Returns the pids it stopped.
 */
export async function stopLeftoverServer(dataDir: string, logger: TemporalServerLog = silent): Promise<number[]> {
  const f = temporalFiles(dataDir);
  const pids = processesUsingDb(f.db, f.pid);
  if (pids.length === 0) return [];
  const signal = (sig: NodeJS.Signals) => {
    for (const p of pids) {
      try {
        if (usesDb(p, f.db)) process.kill(p, sig);
      } catch {
        // gone
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  if (pids.some(alive)) {
    signal('SIGKILL');
    const killDeadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < killDeadline) await sleep(50);
  }
  logger.warn({ pids, db: f.db }, 'stopped a Temporal server left running by an earlier run on this data dir');
  return pids;
}

function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * The Temporal dev server with SQLite persistence under the data dir (workflows survive a
 * restart), the project's namespace and search attributes, and the Web UI.
 *
 * Crash safety: the server runs as `setpriv --pdeathsig SIGKILL flock -n <lock> setpriv
 * --pdeathsig SIGKILL temporal …`, so it dies with this process even on kill -9, and the flock on
 * <data dir>/temporal/temporal.lock (held for the server's lifetime) means two servers can never
 * share the SQLite file. A server left over anyway (no setpriv, or a kill in the instant before
 * the death signal was armed) is found through the pid file and /proc and stopped before the
 * start. Supervised: an unexpected exit restarts it on the same port and file, with backoff.
 */
export async function startTemporalServer(o: TemporalServerOptions): Promise<TemporalServer> {
  const log = o.logger ?? silent;
  const f = temporalFiles(o.dataDir);
  fs.mkdirSync(f.dir, { recursive: true });
  await stopLeftoverServer(o.dataDir, log);
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(o.port),
    '--db-filename', f.db,
    '--namespace', o.namespace,
    '--log-level', 'warn',
    '--dynamic-config-value', 'frontend.enableServerVersionCheck=false',
    // WAL with synchronous=NORMAL: every workflow task commits without waiting on fsync; a crash
    // of the process loses nothing, a power cut at most the last moments (embedded use only).
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    ...SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]),
    ...(o.headless ? ['--headless'] : ['--ui-port', String(o.uiPort), '--ui-ip', '127.0.0.1']),
  ];
  const setpriv = onPath('setpriv');
  const flock = onPath('flock');
  const wrapped = !!(setpriv && flock);
  const argv = wrapped
    ? [setpriv!, '--pdeathsig', 'SIGKILL', flock!, '--nonblock', '--conflict-exit-code', String(LOCK_BUSY), f.lock, setpriv!, '--pdeathsig', 'SIGKILL', o.bin, ...args]
    : [o.bin, ...args];

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let serverPid: number | undefined;
  let listening = false;
  let stopping = false;
  let restarts = 0;
  let attempt = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  /** From the first successful start on: a failed first start is the caller's error, not restarted. */
  let supervising = false;

  /** Starts one server process and waits until it listens. */
  const launch = async (): Promise<void> => {
    const out = fs.openSync(f.log, 'a');
    const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out], detached: false });
    fs.closeSync(out);
    child = c;
    listening = false;
    serverPid = wrapped ? undefined : c.pid;
    const started = Date.now();
    let status: string | null = null;
    exited = new Promise<void>((resolve) => {
      c.once('exit', (code, signal) => {
        status = signal ?? String(code);
        listening = false;
        serverPid = undefined;
        resolve();
        if (!stopping && supervising && child === c && o.supervise !== false) onUnexpectedExit(status, Date.now() - started);
      });
    });
    c.once('error', () => undefined);
    const deadline = Date.now() + LISTEN_TIMEOUT_MS;
    while (!(await canConnect(o.port))) {
      if (status !== null) {
        throw new Error(
          Number(status) === LOCK_BUSY && wrapped
            ? `another Temporal server holds ${f.lock} (it uses ${f.db}); stop it first`
            : `temporal dev server exited with ${status}; see ${f.log}`,
        );
      }
      if (stopping) throw new Error('temporal dev server stopped while starting');
      if (Date.now() > deadline) {
        killTree('SIGKILL');
        throw new Error(`temporal dev server did not listen on ${o.port} within 60s; see ${f.log}`);
      }
      await sleep(100);
    }
    if (wrapped) serverPid = childrenOf(c.pid!)[0];
    listening = status === null;
    try {
      fs.writeFileSync(f.pid, `${[c.pid, serverPid].filter(Boolean).join('\n')}\n`);
    } catch {
      // the pid file is a hint; /proc is searched as well
    }
  };

  const killTree = (sig: NodeJS.Signals) => {
    for (const p of [serverPid, child?.pid]) {
      if (p === undefined) continue;
      try {
        process.kill(p, sig);
      } catch {
        // gone
      }
    }
  };

  const onUnexpectedExit = (status: string, ranMs: number) => {
    if (ranMs > STABLE_MS) attempt = 0;
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt++;
    const why = Number(status) === LOCK_BUSY && wrapped ? `${status}: another process holds ${f.lock}` : status;
    log.warn({ status, restartInMs: delay, attempt }, `embedded Temporal exited (${why}); restarting it in ${delay} ms`);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopping) return;
      launch().then(
        () => {
          restarts++;
          log.info({ pid: serverPid, attempt }, 'embedded Temporal is back');
        },
        (err) => {
          // The exit handler has logged the exit and scheduled the next attempt (a server that
          // never listened was killed, which exits it too).
          if (!stopping) log.info({ err: (err as Error).message }, 'embedded Temporal did not come back yet');
        },
      );
    }, delay);
  };

  await launch();
  supervising = true;
  return {
    address: `127.0.0.1:${o.port}`,
    uiUrl: o.headless ? undefined : `http://127.0.0.1:${o.uiPort}`,
    pid: () => serverPid,
    up: () => listening,
    restarts: () => restarts,
    stop: async () => {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        // The server first (flock does not forward signals; killing it first would SIGKILL the
        // server through its death signal).
        try {
          process.kill(serverPid ?? c.pid!, 'SIGTERM');
        } catch {
          // gone
        }
        const killer = setTimeout(() => killTree('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(killer);
      }
      fs.rmSync(f.pid, { force: true });
    },
  };
}
