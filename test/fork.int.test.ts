/**
 * Branch forks on both storage drivers against real postgres 15 processes: btrfs on the loop
 * volume test/globalSetup.ts mounts, copy on os.tmpdir(). No Temporal, API or proxy.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { resolveOsUser } from '../src/engine/exec';
import { forkDataDir } from '../src/engine/fork';
import { HostEngine } from '../src/engine/host';
import { HostLayout } from '../src/engine/layout';
import { isPortFree } from '../src/engine/ports';
import { createDataDir, filesystemType, removeDataDir, type StorageDriver } from '../src/engine/storage';
import { withSystemClient, type PgInstall } from '../src/engine/cluster';
import { testPgInstalls } from './support/pg';

jest.setTimeout(120_000);

const pgs = testPgInstalls();
const pg: PgInstall = pgs.newest;
const LSN = /^[0-9A-F]+\/[0-9A-F]{1,8}$/;

let nextPort = 31000 + Math.floor(Math.random() * 20000);
async function freePort(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const p = nextPort++;
    if (await isPortFree(p)) return p;
  }
  throw new Error('no free port');
}

/** Postmasters (ours or leaked) whose data dir is under `dir`. */
function postgresUnder(dir: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes('postgres') && l.includes(dir));
}

function isSubvolume(dir: string): boolean {
  try {
    execFileSync('btrfs', ['subvolume', 'show', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('the btrfs driver is tested unless it was knowingly switched off', () => {
  if (!process.env.LAMPION_TEST_BTRFS_DIR) expect(process.env.LAMPION_TEST_NO_BTRFS).toBe('1');
});

describe.each<StorageDriver>(['btrfs', 'copy'])('fork on the %s driver', (driver) => {
  const base = driver === 'btrfs' ? process.env.LAMPION_TEST_BTRFS_DIR : os.tmpdir();
  const maybe = base ? it : it.skip;

  let root: string;
  let engine: HostEngine;
  const endpoints = new Map<string, { endpointId: string; branchId: string; port: number }>();

  async function start(branchId: string) {
    const spec = { endpointId: `ep-${branchId}`, branchId, port: await freePort() };
    await engine.startEndpoint(spec);
    endpoints.set(branchId, spec);
    return spec;
  }
  async function stop(branchId: string) {
    await engine.stopEndpoint({ branchId });
  }
  function sql<T = any>(branchId: string, text: string, params: unknown[] = []): Promise<T[]> {
    const ep = endpoints.get(branchId)!;
    return withSystemClient(engine.layout.socketDir(ep.endpointId), ep.port, async (c) => (await c.query(text, params)).rows);
  }
  async function names(branchId: string): Promise<string[]> {
    return (await sql<{ v: string }>(branchId, 'SELECT v FROM t WHERE id > 1000 ORDER BY id')).map((r) => r.v);
  }
  async function lsnAtLeast(branchId: string, lsn: string, floor: string): Promise<boolean> {
    return (await sql<{ ok: boolean }>(branchId, 'SELECT $1::pg_lsn >= $2::pg_lsn AS ok', [lsn, floor]))[0].ok;
  }
  const dataDir = (branchId: string) => engine.layout.branchDataDir(branchId);

  beforeAll(async () => {
    if (!base) return;
    root = fs.mkdtempSync(path.join(base, 'fork-'));
    fs.chmodSync(root, 0o711);
    engine = new HostEngine(new HostLayout(root), pgs, driver);
    await engine.prepare();
    await engine.createRootBranchData('br-root', pg.major);
    await start('br-root');
    await sql('br-root', "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
    await sql('br-root', "INSERT INTO t SELECT g, 'seed' FROM generate_series(1, 1000) g");
  });

  afterAll(async () => {
    if (!base) return;
    const branches = fs.existsSync(engine.layout.branchesDir) ? fs.readdirSync(engine.layout.branchesDir) : [];
    for (const b of branches) await engine.stopEndpoint({ branchId: b }).catch(() => undefined);
    for (const b of branches) await engine.removeBranchData(b);
    for (const ep of endpoints.values()) await engine.removeEndpointFiles(ep.endpointId);
    expect(postgresUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  maybe('runs on the intended filesystem', async () => {
    expect(await filesystemType(root)).toBe(driver === 'btrfs' ? 'btrfs' : (await filesystemType(os.tmpdir())));
    expect(await engine.driver()).toBe(driver);
  });

  maybe('forks a running parent; the child starts beside it and sees its rows', async () => {
    await sql('br-root', "INSERT INTO t VALUES (1001, 'before-fork')");
    const [{ lsn: committed }] = await sql<{ lsn: string }>('br-root', 'SELECT pg_current_wal_lsn()::text AS lsn');

    const fork = await engine.forkBranchData('br-root', 'br-a', endpoints.get('br-root'));
    expect(fork.driver).toBe(driver);
    expect(fork.lsn).toMatch(LSN);
    expect(await lsnAtLeast('br-root', fork.lsn, committed)).toBe(true);

    const dir = dataDir('br-a');
    for (const f of ['postmaster.pid', 'postmaster.opts', 'standby.signal', 'recovery.signal']) {
      expect(fs.existsSync(path.join(dir, f))).toBe(false);
    }
    const st = fs.statSync(dir);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(pg.user?.uid ?? process.getuid!());
    expect(isSubvolume(dir)).toBe(driver === 'btrfs');

    await start('br-a');
    expect(fs.existsSync(engine.layout.walArchiveDir('br-a'))).toBe(true);
    expect(await engine.endpointRunning({ branchId: 'br-root' })).toBe(true);
    expect((await sql<{ n: string }>('br-a', 'SELECT count(*) AS n FROM t'))[0].n).toBe('1001');
    expect(await names('br-a')).toEqual(['before-fork']);
  });

  maybe('writes after the fork stay on their own side', async () => {
    await sql('br-a', "INSERT INTO t VALUES (1002, 'child-only')");
    await sql('br-root', "INSERT INTO t VALUES (1003, 'parent-only')");
    await sql('br-root', "UPDATE t SET v = 'parent-updated' WHERE id = 1");
    expect(await names('br-a')).toEqual(['before-fork', 'child-only']);
    expect(await names('br-root')).toEqual(['before-fork', 'parent-only']);
    expect((await sql<{ v: string }>('br-a', 'SELECT v FROM t WHERE id = 1'))[0].v).toBe('seed');
  });

  maybe('is idempotent: a finished fork is kept, a partial one redone', async () => {
    const first = JSON.parse(fs.readFileSync(path.join(dataDir('br-a'), '.lampion-fork'), 'utf8'));
    const again = await engine.forkBranchData('br-root', 'br-a', endpoints.get('br-root'));
    expect(again).toEqual({ driver, lsn: first.lsn, historyId: first.historyId });
    expect(await names('br-a')).toEqual(['before-fork', 'child-only']);

    // A crash mid-fork: the dir exists but carries no marker of its own.
    fs.mkdirSync(dataDir('br-p'));
    fs.writeFileSync(path.join(dataDir('br-p'), 'junk'), 'x');
    const redone = await engine.forkBranchData('br-root', 'br-p', endpoints.get('br-root'));
    expect(redone.lsn).toMatch(LSN);
    expect(fs.existsSync(path.join(dataDir('br-p'), 'junk'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir('br-p'), 'PG_VERSION'))).toBe(true);
  });

  maybe('refuses a target that exists and leaves it alone', async () => {
    const target = dataDir('br-root');
    const ep = endpoints.get('br-root')!;
    await expect(
      forkDataDir(pg, driver, { dataDir: dataDir('br-a'), running: true, socketDir: engine.layout.socketDir('ep-br-a'), port: endpoints.get('br-a')!.port }, target),
    ).rejects.toThrow(/already exists/);
    expect(fs.existsSync(path.join(target, 'PG_VERSION'))).toBe(true);
    expect(await engine.endpointRunning({ branchId: ep.branchId })).toBe(true);
  });

  maybe('removes the partial child when a fork fails midway, and refuses tablespaces', async () => {
    // Passes the copy/snapshot step, then fails reading pg_control.
    const fake = dataDir('br-fake');
    await createDataDir(fake, driver, pg.user);
    fs.writeFileSync(path.join(fake, 'PG_VERSION'), '15\n');
    const source = { dataDir: fake, running: false, socketDir: '', port: 0 };
    await expect(forkDataDir(pg, driver, source, dataDir('br-f'))).rejects.toThrow(/pg_controldata/);
    expect(fs.existsSync(dataDir('br-f'))).toBe(false);

    fs.mkdirSync(path.join(fake, 'pg_tblspc'));
    fs.symlinkSync('/nonexistent', path.join(fake, 'pg_tblspc', '16384'));
    await expect(forkDataDir(pg, driver, source, dataDir('br-f'))).rejects.toThrow(/tablespaces/);
    expect(fs.existsSync(dataDir('br-f'))).toBe(false);
  });

  maybe('refuses to fork a running parent without its endpoint', async () => {
    await expect(engine.forkBranchData('br-root', 'br-x')).rejects.toThrow(/running/);
    expect(fs.existsSync(dataDir('br-x'))).toBe(false);
  });

  maybe('forks a stopped parent', async () => {
    const [{ lsn: committed }] = await sql<{ lsn: string }>('br-root', 'SELECT pg_current_wal_lsn()::text AS lsn');
    await stop('br-root');
    const fork = await engine.forkBranchData('br-root', 'br-b');
    expect(fork.lsn).toMatch(LSN);
    expect(isSubvolume(dataDir('br-b'))).toBe(driver === 'btrfs');
    expect(fs.statSync(dataDir('br-b')).mode & 0o777).toBe(0o700);

    await start('br-root');
    await start('br-b');
    expect(await lsnAtLeast('br-b', fork.lsn, committed)).toBe(true);
    expect(await names('br-b')).toEqual(['before-fork', 'parent-only']);
    await sql('br-b', "INSERT INTO t VALUES (1004, 'stopped-child-only')");
    expect(await names('br-root')).toEqual(['before-fork', 'parent-only']);
  });

  maybe('forks a fork (running) that was itself forked', async () => {
    const fork = await engine.forkBranchData('br-a', 'br-c', endpoints.get('br-a'));
    expect(fork.lsn).toMatch(LSN);
    await start('br-c');
    expect(await names('br-c')).toEqual(['before-fork', 'child-only']);
    const marker = JSON.parse(fs.readFileSync(path.join(dataDir('br-c'), '.lampion-fork'), 'utf8'));
    expect(marker).toMatchObject({ branchId: 'br-c', parentBranchId: 'br-a' });
  });
});

describe.each<StorageDriver>(['btrfs', 'copy'])('spare clusters on the %s driver', (driver) => {
  const base = driver === 'btrfs' ? process.env.LAMPION_TEST_BTRFS_DIR : os.tmpdir();
  const maybe = base ? it : it.skip;
  let root: string;
  let engine: HostEngine;
  const sparesDir = () => path.join(engine.layout.branchesDir, '_spares');

  beforeAll(async () => {
    if (!base) return;
    root = fs.mkdtempSync(path.join(base, 'spares-'));
    fs.chmodSync(root, 0o711);
    engine = new HostEngine(new HostLayout(root), pgs, driver, undefined, undefined, { spareClusters: 1 });
    await engine.prepare();
  });

  afterAll(async () => {
    if (!base) return;
    await engine.spares.close();
    for (const b of ['br-one', 'br-two']) {
      await engine.stopEndpoint({ branchId: b }).catch(() => undefined);
      await engine.removeBranchData(b);
      await engine.removeEndpointFiles(`ep-${b}`);
    }
    for (const s of fs.existsSync(sparesDir()) ? fs.readdirSync(sparesDir()) : []) await removeDataDir(path.join(sparesDir(), s));
    expect(postgresUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  maybe('a root branch takes a ready spare, which has its own system identifier, and a new one is made', async () => {
    await engine.createRootBranchData('br-one', pg.major);
    await engine.spares.idle();
    const [spare] = await engine.spares.list(pg.major);
    expect(spare).toBeDefined();
    expect(isSubvolume(path.join(sparesDir(), spare))).toBe(driver === 'btrfs');

    // A half-made spare (a crash mid-initdb) is removed by the next refill.
    await createDataDir(path.join(sparesDir(), `${pg.major}-half-made`), driver, pg.user);

    await engine.createRootBranchData('br-two', pg.major);
    expect(fs.existsSync(path.join(sparesDir(), spare))).toBe(false);
    expect(fs.existsSync(path.join(engine.layout.branchDataDir('br-two'), '.lampion-spare'))).toBe(false);
    expect(isSubvolume(engine.layout.branchDataDir('br-two'))).toBe(driver === 'btrfs');
    await engine.spares.idle();
    const after = await engine.spares.list(pg.major);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(spare);
    expect(fs.readdirSync(sparesDir()).sort()).toEqual(after);

    const ids: string[] = [];
    for (const b of ['br-one', 'br-two']) {
      const spec = { endpointId: `ep-${b}`, branchId: b, port: await freePort() };
      await engine.startEndpoint(spec);
      const rows = await withSystemClient(engine.layout.socketDir(spec.endpointId), spec.port, async (c) => (await c.query('SELECT system_identifier::text AS id FROM pg_control_system()')).rows);
      ids.push(rows[0].id);
    }
    expect(ids[0]).not.toBe(ids[1]);
  });
});
