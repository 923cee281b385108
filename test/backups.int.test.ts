/**
 * The engine's WAL archive, bases and restores on real postmasters, on both storage drivers and
 * every installed major: a restore holds exactly the transactions committed before its LSN.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HostEngine } from '../src/engine/host';
import { HostLayout } from '../src/engine/layout';
import { isPortFree } from '../src/engine/ports';
import { withSystemClient } from '../src/engine/cluster';
import type { StorageDriver } from '../src/engine/storage';
import { archivedSegments, archiveDir } from '../src/engine/walArchive';
import { testPgInstalls, TEST_MAJORS } from './support/pg';

jest.setTimeout(180_000);

let nextPort = 33000 + Math.floor(Math.random() * 20000);
async function freePort(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const p = nextPort++;
    if (await isPortFree(p)) return p;
  }
  throw new Error('no free port');
}

const cases: [StorageDriver, number][] = [];
for (const major of TEST_MAJORS) for (const driver of ['btrfs', 'copy'] as const) cases.push([driver, major]);

describe.each(cases)('WAL archive and restore on the %s driver, Postgres %i', (driver, major) => {
  const base = driver === 'btrfs' ? process.env.LAMPION_TEST_BTRFS_DIR : os.tmpdir();
  const maybe = base ? it : it.skip;
  let root: string;
  let engine: HostEngine;
  const endpoints = new Map<string, { endpointId: string; branchId: string; port: number }>();

  async function start(branchId: string) {
    const spec = endpoints.get(branchId) ?? { endpointId: `ep-${branchId}`, branchId, port: await freePort() };
    await engine.startEndpoint(spec);
    endpoints.set(branchId, spec);
    return spec;
  }
  function sql<T = any>(branchId: string, text: string, params: unknown[] = []): Promise<T[]> {
    const ep = endpoints.get(branchId)!;
    return withSystemClient(engine.layout.socketDir(ep.endpointId), ep.port, async (c) => (await c.query(text, params)).rows);
  }
  const ids = async (branchId: string) => (await sql<{ id: number }>(branchId, 'SELECT id FROM t ORDER BY id')).map((r) => r.id);

  beforeAll(async () => {
    if (!base) return;
    root = fs.mkdtempSync(path.join(base, 'backups-'));
    fs.chmodSync(root, 0o711);
    engine = new HostEngine(new HostLayout(root), testPgInstalls(), driver);
    await engine.prepare();
    await engine.createRootBranchData('br-src', major);
    await start('br-src');
    await sql('br-src', 'CREATE TABLE t (id int PRIMARY KEY)');
    await sql('br-src', 'INSERT INTO t VALUES (1), (2)');
  });

  afterAll(async () => {
    if (!base) return;
    for (const b of fs.readdirSync(engine.layout.branchesDir).filter((b) => b.startsWith('br-'))) {
      await engine.stopEndpoint({ branchId: b, endpointId: `ep-${b}` }).catch(() => undefined);
      await engine.removeBranchData(b);
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  maybe('archives with basic_archive into the branch history, and restores to an exact LSN', async () => {
    const src = endpoints.get('br-src')!;
    const baseInfo = await engine.takeBase('br-src', 'b1', src);
    expect(baseInfo.historyId).toMatch(/^h/);
    const [{ library }] = await sql<{ library: string }>('br-src', "SELECT current_setting('archive_library') AS library");
    expect(library).toBe('basic_archive');

    await sql('br-src', 'INSERT INTO t VALUES (3)');
    const point = await engine.historyEnd('br-src', undefined, src);
    await sql('br-src', 'INSERT INTO t VALUES (4)');
    const [{ failed }] = await sql<{ failed: string }>('br-src', 'SELECT failed_count::text AS failed FROM pg_stat_archiver');
    expect(failed).toBe('0');
    expect((await archivedSegments(archiveDir(engine.layout, { branchId: 'br-src', historyId: baseInfo.historyId }))).length).toBeGreaterThan(0);

    await engine.restoreBranchData({ sourceBranchId: 'br-src', historyId: baseInfo.historyId, baseId: 'b1', childBranchId: 'br-r1', targetLsn: point.endLsn });
    await start('br-r1');
    expect(await ids('br-r1')).toEqual([1, 2, 3]);
    // Promoted: a read-write branch of its own, writing its own history.
    await sql('br-r1', 'INSERT INTO t VALUES (100)');
    const [{ rec }] = await sql<{ rec: boolean }>('br-r1', 'SELECT pg_is_in_recovery() AS rec');
    expect(rec).toBe(false);
    expect((await engine.history('br-r1')).historyId).not.toBe(baseInfo.historyId);
  });

  maybe('a commit timestamp resolves to the LSN of the next commit; a stopped branch restores to its end', async () => {
    const src = endpoints.get('br-src')!;
    const end1 = await engine.historyEnd('br-src', undefined, src);
    const history = (await engine.history('br-src')).historyId;
    await sql('br-src', 'INSERT INTO t VALUES (5)');
    await sql('br-src', 'INSERT INTO t VALUES (6)');
    const end2 = await engine.historyEnd('br-src', undefined, src);
    const commits = await engine.historyCommits('br-src', end2, end1.endLsn);
    expect(commits.length).toBe(2);
    // Everything committed up to the first of them: the target is the second commit's LSN.
    await engine.restoreBranchData({ sourceBranchId: 'br-src', historyId: history, baseId: 'b1', childBranchId: 'br-r2', targetLsn: commits[1].lsn });
    await start('br-r2');
    expect(await ids('br-r2')).toEqual([1, 2, 3, 4, 5]);

    await engine.stopEndpoint({ branchId: 'br-src', endpointId: src.endpointId });
    const stopped = await engine.historyEnd('br-src');
    await engine.restoreBranchData({ sourceBranchId: 'br-src', historyId: history, baseId: 'b1', childBranchId: 'br-r3', targetLsn: stopped.endLsn });
    await start('br-r3');
    expect(await ids('br-r3')).toEqual([1, 2, 3, 4, 5, 6]);
  });
  const incremental = driver === 'copy' && major >= 17 ? maybe : it.skip;
  incremental('17+, copy driver: a later base of a running compute is incremental on the newest one, and a restore from it combines the chain', async () => {
    const src = await start('br-src');
    const history = (await engine.history('br-src')).historyId;
    await sql('br-src', "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 50000) g");
    const full = await engine.takeBase('br-src', 'i0', src);
    // b1 (first test) was taken by pg_basebackup with WAL summaries on: i0 builds on it.
    expect(full).toMatchObject({ parentBaseId: 'b1', chainLength: 1 });
    await sql('br-src', 'INSERT INTO t VALUES (7)');
    const inc = await engine.takeBase('br-src', 'i1', src);
    expect(inc).toMatchObject({ parentBaseId: 'i0', chainLength: 2 });
    const files = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const incDir = engine.layout.baseDir('br-src', history, 'i1');
    expect(files(incDir).some((f) => path.basename(f).startsWith('INCREMENTAL.'))).toBe(true);
    // Without pg_wal (each base streams at least one 16 MB segment of its own).
    const bytes = (dir: string) => files(dir).filter((f) => !f.includes('/pg_wal/')).reduce((n, f) => n + fs.statSync(f).size, 0);
    // The 10 MB table changed before i0, not since: i1 holds a fraction of it.
    expect(bytes(incDir)).toBeLessThan(bytes(engine.layout.baseDir('br-src', history, 'i0')) / 2);

    await sql('br-src', 'INSERT INTO t VALUES (8)');
    const point = await engine.historyEnd('br-src', undefined, src);
    await sql('br-src', 'INSERT INTO t VALUES (9)');
    await engine.restoreBranchData({ sourceBranchId: 'br-src', historyId: history, baseId: 'i1', childBranchId: 'br-r4', targetLsn: point.endLsn });
    await start('br-r4');
    expect(await ids('br-r4')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await sql<{ n: string }>('br-r4', 'SELECT count(*)::text AS n FROM big'))[0].n).toBe('50000');

    // A chain with a missing link is refused with the reason, not restored wrong.
    fs.rmSync(`${engine.layout.baseDir('br-src', history, 'i0')}.json`);
    await expect(engine.restoreBranchData({ sourceBranchId: 'br-src', historyId: history, baseId: 'i1', childBranchId: 'br-r5', targetLsn: point.endLsn })).rejects.toThrow(/chain of base i1 is broken/);
    expect(fs.existsSync(engine.layout.branchDataDir('br-r5'))).toBe(false);
  });
});
