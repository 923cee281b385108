import { execFile, spawn, spawnSync } from 'node:child_process';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Resolves the OS user that runs postgres; undefined means "the current user". */
export function resolveOsUser(name: string | undefined): OsUser | undefined {
  if (!name) return undefined;
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error(`OS user "${name}" does not exist; create it (scripts/ensure-deps.sh does) or set LAMPION_PG_OS_USER`);
  }
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | string | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (${code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
}

export interface RunOptions {
  user?: OsUser;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export interface LongRunOptions extends RunOptions {
  /** Aborting kills the program and everything it started (its own process group). */
  signal?: AbortSignal;
  /** Called with the process group id once the program runs, so a later attempt can find it. */
  onSpawn?: (pgid: number) => Promise<void> | void;
}

/**
 * For long host work (copies, base backups): the program runs in its own process group, so
 * cancellation stops it and whatever it forked (pg_basebackup's WAL streamer), not the parent
 * alone; stderr is kept for the error, stdout is discarded.
 */
export function runLong(file: string, args: string[], opts: LongRunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new CommandError(`${file} ${args[0] ?? ''}`.trim(), 'ABORT_ERR', 'cancelled before it started'));
    const child = spawn(file, args, {
      uid: opts.user?.uid,
      gid: opts.user?.gid,
      env: { ...process.env, ...opts.env, ...(opts.user ? { HOME: '/tmp', USER: opts.user.name } : {}) },
      cwd: opts.cwd ?? '/',
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-8192);
    });
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = opts.timeoutMs ? setTimeout(killGroup, opts.timeoutMs) : undefined;
    opts.signal?.addEventListener('abort', killGroup, { once: true });
    child.once('spawn', () => void Promise.resolve(opts.onSpawn?.(child.pid!)).catch(() => undefined));
    child.once('error', (err) => reject(new CommandError(`${file} ${args[0] ?? ''}`.trim(), (err as NodeJS.ErrnoException).code ?? null, err.message)));
    child.once('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', killGroup);
      // The leader may exit before its group: make sure nothing of it outlives the call.
      killGroup();
      if (code === 0) resolve();
      else reject(new CommandError(`${file} ${args[0] ?? ''}`.trim(), opts.signal?.aborted ? 'ABORT_ERR' : code ?? sig, stderr));
    });
  });
}

/** Whether any process of the group still exists. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills a process group left by an earlier attempt (a crashed worker's copy) and waits until it is gone. */
export async function killGroup(pgid: number, waitMs = 10_000): Promise<void> {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    return;
  }
  const deadline = Date.now() + waitMs;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Runs a program (never through a shell), as `user` when given. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        uid: opts.user?.uid,
        gid: opts.user?.gid,
        env: { ...process.env, ...opts.env, ...(opts.user ? { HOME: '/tmp', USER: opts.user.name } : {}) },
        cwd: opts.cwd ?? '/',
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new CommandError(`${file} ${args[0] ?? ''}`.trim(), code, `${stderr || ''}${err.message}`));
        } else resolve({ stdout, stderr });
      },
    );
  });
}
