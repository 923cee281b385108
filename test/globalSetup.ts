import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { resolveOsUser } from '../src/engine/exec';
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

/** One real Temporal dev server and one real control-plane Postgres for the whole suite. */
export default async function globalSetup() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-test-'));
  fs.chmodSync(root, 0o711);
  const pgOsUser = process.env.LAMPION_PG_OS_USER ?? (process.getuid?.() === 0 ? 'lampion' : undefined);
  const pg = { binDir: process.env.LAMPION_PG_BINDIR ?? '/usr/lib/postgresql/15/bin', user: resolveOsUser(pgOsUser) };
  const [controlPort, temporalPort] = [await freePort(25432), await freePort(27233)];
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
