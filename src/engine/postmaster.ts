import path from 'node:path';
import { promises as fsp } from 'node:fs';

/**
 * The one reader of postmaster.pid: the pid it names, if that process is alive and is the data
 * dir's postmaster (a stale file left by a crash may name another process by now; the
 * postmaster's working directory is its data dir). `verified: false` when /proc does not let us
 * look (another user's process): the pid file is then trusted.
 */
export async function postmasterPid(dataDir: string): Promise<{ pid: number; verified: boolean } | undefined> {
  const first = (await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0].trim();
  if (!/^\d+$/.test(first) || Number(first) <= 0) return undefined;
  const pid = Number(first);
  try {
    return (await fsp.readlink(`/proc/${pid}/cwd`)) === (await fsp.realpath(dataDir)) ? { pid, verified: true } : undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? { pid, verified: false } : undefined;
  }
}

/**
 * Whether a pid names a process that has ended: gone, or a zombie its parent has not reaped yet.
 * A killed postmaster is re-parented to the host's init, which may reap late; postgres's own
 * lock-file check (kill(pid, 0)) counts a zombie as alive and refuses to start.
 */
export async function processEnded(pid: number): Promise<boolean> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return true;
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state === 'Z' || state === 'X';
}

/** Line 8 of postmaster.pid: the postmaster's status ("ready" once it accepts connections). */
export async function postmasterStatus(dataDir: string): Promise<{ pid: number; status: string } | undefined> {
  const lines = (await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n');
  const pid = Number(lines[0]);
  return pid > 0 ? { pid, status: lines[7]?.trim() ?? '' } : undefined;
}

/** Parent pid from /proc/<pid>/stat; the command name may contain spaces and parentheses. */
function parsePpid(stat: string): number | undefined {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(rest[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/**
 * A process and its descendants. Follows /proc/<pid>/task/<pid>/children (a handful of reads;
 * postgres processes are single-threaded, so the main thread's list is the process's); where the
 * kernel lacks CONFIG_PROC_CHILDREN, one scan of every /proc/<pid>/stat.
 */
export async function processTree(root: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    if (out.includes(pid)) continue;
    let children: string;
    try {
      children = await fsp.readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    } catch {
      if (pid === root) return scanTree(root);
      continue; // exited meanwhile
    }
    out.push(pid);
    queue.push(...children.split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

async function scanTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  const entries = (await fsp.readdir('/proc')).filter((e) => /^\d+$/.test(e));
  await Promise.all(
    entries.map(async (e) => {
      const stat = await fsp.readFile(`/proc/${e}/stat`, 'utf8').catch(() => undefined);
      const ppid = stat === undefined ? undefined : parsePpid(stat);
      if (ppid === undefined) return;
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    }),
  );
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    if (out.includes(pid)) continue;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** The postmaster of a data dir and everything it forked; [] when none runs. */
export async function postgresPids(dataDir: string): Promise<number[]> {
  const pm = await postmasterPid(dataDir);
  return pm ? processTree(pm.pid) : [];
}

/**
 * The socket lock a killed postmaster leaves (.s.PGSQL.<port>.lock names its pid): removed, with
 * the socket, when that pid has ended, for the same reason as a stale postmaster.pid.
 */
export async function clearStaleSocketLock(socketDir: string, port: number): Promise<void> {
  const lock = path.join(socketDir, `.s.PGSQL.${port}.lock`);
  const pid = Number((await fsp.readFile(lock, 'utf8').catch(() => '')).split('\n')[0]);
  if (!(pid > 0) || !(await processEnded(pid))) return;
  await fsp.rm(lock, { force: true });
  await fsp.rm(path.join(socketDir, `.s.PGSQL.${port}`), { force: true });
}
