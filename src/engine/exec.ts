import { execFile, spawnSync } from 'node:child_process';

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
