import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { resolveOsUser } from '../src/engine/exec';
import { PgInstalls } from '../src/engine/pgInstalls';
import { testBinDirs } from './support/pg';
import { startControlDb } from '../src/stack/controlDb';
import { startTemporalServer } from '../src/stack/temporalServer';
import { isPortFree } from '../src/engine/ports';

async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 500; p++) if (await isPortFree(p)) return p;
  throw new Error(`no free port from ${from}`);
}

function temporalBin(): string {
  if (process.env.LAMPION_TEMPORAL_BIN) return process.env.LAMPION_TEMPORAL_BIN;
  const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
  return path.join(gopath, 'bin', 'temporal');
}

/** Stable (not under LAMPION_TEST_ROOT) so the loop image is made once and then reused. */
const BTRFS_TEST_VOLUME = '/var/tmp/lampion-test-btrfs';

/**
 * A private dir on a loop-mounted btrfs volume for the btrfs storage driver's tests. Failing here
 * is deliberate: a driver silently skipped is a driver shipped untested.
 */
function btrfsTestDir(): string | undefined {
  const script = path.resolve(__dirname, '..', 'scripts', 'btrfs-volume.sh');
  const up = spawnSync('bash', [script, 'up', BTRFS_TEST_VOLUME], { encoding: 'utf8' });
  if (up.status !== 0) {
    if (process.env.LAMPION_TEST_NO_BTRFS === '1') return undefined;
    const why = (up.stderr || up.error?.message || '').trim();
    throw new Error(
      `No btrfs volume for the btrfs driver tests (scripts/btrfs-volume.sh up ${BTRFS_TEST_VOLUME} exited ${up.status}): ${why}\n` +
        'Run the tests as root on a kernel with btrfs and loop devices, or set LAMPION_TEST_NO_BTRFS=1 to skip the btrfs driver knowingly.',
    );
  }
  const dir = fs.mkdtempSync(path.join(BTRFS_TEST_VOLUME, 'run-'));
  // The compute OS user must traverse it to reach its data dirs.
  fs.chmodSync(dir, 0o711);
  return dir;
}

/** One real Temporal dev server and one real control-plane Postgres for the whole suite. */
export default async function globalSetup() {
  // First, so a missing volume fails before anything that would need tearing down is started.
  const btrfsDir = btrfsTestDir();
  if (btrfsDir) {
    (globalThis as any).__lampionBtrfsDir = btrfsDir;
    process.env.LAMPION_TEST_BTRFS_DIR = btrfsDir;
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-test-'));
  fs.chmodSync(root, 0o711);
  const pgOsUser = process.env.LAMPION_PG_OS_USER ?? (process.getuid?.() === 0 ? 'lampion' : undefined);
  const user = resolveOsUser(pgOsUser);
  const pg = new PgInstalls(testBinDirs().map((i) => ({ ...i, user })));
  // A random start: suites of several checkouts on one machine race for the first free port.
  const jitter = () => Math.floor(Math.random() * 400);
  const [controlPort, temporalPort] = [await freePort(25432 + jitter()), await freePort(27233 + jitter())];
  const [control, temporal] = await Promise.all([
    startControlDb(pg, path.join(root, 'shared'), controlPort),
    startTemporalServer({ bin: temporalBin(), port: temporalPort, uiPort: 0, dataDir: path.join(root, 'shared'), namespace: 'lampion', headless: true }),
  ]);
  (globalThis as any).__lampion = { control, temporal, root };
  process.env.LAMPION_TEST_ROOT = root;
  process.env.LAMPION_TEST_CONTROL_URL = control.url;
  process.env.LAMPION_TEST_TEMPORAL_ADDRESS = temporal.address;
  if (pgOsUser) process.env.LAMPION_PG_OS_USER = pgOsUser;
}
