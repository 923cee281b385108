import { promises as fsp } from 'node:fs';
import type { OsUser } from './exec';

/** Creates a directory owned by the compute user (postgres checks ownership of its dirs). */
export async function ensureOwnedDir(dir: string, user: OsUser | undefined, mode = 0o700): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode });
  await fsp.chmod(dir, mode);
  if (user) await fsp.chown(dir, user.uid, user.gid);
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

export async function writeFileAtomic(file: string, data: string, user: OsUser | undefined, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, data, { mode });
  if (user) await fsp.chown(tmp, user.uid, user.gid);
  await fsp.rename(tmp, file);
}
