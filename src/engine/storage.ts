import { promises as fsp } from 'node:fs';
import { run, OsUser } from './exec';
import { exists } from './fs';

export type StorageDriver = 'btrfs' | 'copy';

export async function filesystemType(dir: string): Promise<string> {
  const { stdout } = await run('stat', ['-f', '-c', '%T', dir]);
  return stdout.trim();
}

/** btrfs when the directory lives on btrfs (subvolumes make forks O(1)); a plain directory otherwise. */
export async function detectDriver(dir: string, override?: StorageDriver): Promise<StorageDriver> {
  if (override) return override;
  return (await filesystemType(dir)) === 'btrfs' ? 'btrfs' : 'copy';
}

/** An empty branch data directory, ready for initdb. */
export async function createDataDir(dir: string, driver: StorageDriver, user: OsUser | undefined): Promise<void> {
  if (driver === 'btrfs') await run('btrfs', ['subvolume', 'create', dir]);
  else await fsp.mkdir(dir, { mode: 0o700 });
  await fsp.chmod(dir, 0o700);
  if (user) await fsp.chown(dir, user.uid, user.gid);
}

async function isSubvolume(dir: string): Promise<boolean> {
  try {
    await run('btrfs', ['subvolume', 'show', dir]);
    return true;
  } catch {
    return false;
  }
}

/** Idempotent: a missing directory is already removed. */
export async function removeDataDir(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  if ((await filesystemType(dir)) === 'btrfs' && (await isSubvolume(dir))) {
    await run('btrfs', ['subvolume', 'delete', dir]);
    return;
  }
  await fsp.rm(dir, { recursive: true, force: true });
}
