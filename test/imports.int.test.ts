import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Client } from 'pg';
import { HostEngine } from '../src/engine/host';
import { HostLayout } from '../src/engine/layout';
import { groupAlive } from '../src/engine/exec';
import { ImportError } from '../src/engine/imports';
import { parseSourceDsn } from '../src/domain/sourceDsn';
import { startSourceServer, SourceServer } from './support/sourcePg';
import { testPgInstalls } from './support/pg';

/**
 * The engine's import without Temporal: a retry of an import (the worker died mid-load) starts
 * from an empty database, a second attempt in the same process stops the first, and programs a
 * dead worker left behind are stopped before the branch's data goes.
 */
describe('database imports on the host engine', () => {
  let source: SourceServer;
  let engine: HostEngine;
  const branchId = 'br-importint01';
  const endpointId = 'ep-importint01';
  let port: number;
  const password = 'target-pw';
  const target = () => ({ endpointId, branchId, port, password });

  async function count(): Promise<number> {
    const c = new Client({ host: '127.0.0.1', port, user: 'cloud_admin', password, database: 'postgres' });
    await c.connect();
    try {
      return (await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n;
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    source = await startSourceServer({ major: 18, name: 'engine' });
    await source.sql("CREATE ROLE owner LOGIN PASSWORD 'src-pw'");
    await source.sql('CREATE DATABASE items OWNER owner');
    await source.sql("SET ROLE owner; CREATE TABLE items (id int PRIMARY KEY, label text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200000) g", 'items');
    const dataDir = path.join(process.env.LAMPION_TEST_ROOT!, `engine-imports-${process.pid}`);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o711 });
    engine = new HostEngine(new HostLayout(dataDir), testPgInstalls(), 'copy');
    await engine.prepare();
    await engine.createRootBranchData(branchId, 18);
    port = await engine.ports.reserve(endpointId);
    const spec = { endpointId, branchId, port, computeCu: 1 };
    await engine.startEndpoint(spec);
    await engine.bootstrapRoles(spec, password);
  });
  afterAll(async () => {
    await engine?.stopEndpoint({ branchId, endpointId }).catch(() => undefined);
    await source?.stop();
  });

  const dsn = () => parseSourceDsn(source.dsn({ user: 'owner', password: 'src-pw', database: 'items' }));

  it('loads the source; loading again into the same database fails, a retry (fresh: false) empties it first', async () => {
    const first = await engine.importDatabase(dsn(), target());
    expect(first.bytes).toBeGreaterThan(2_000_000);
    expect(await count()).toBe(200000);
    // What a retry would meet without emptying the database: its own first half.
    const again = engine.importDatabase(dsn(), target());
    await expect(again).rejects.toThrow(ImportError);
    await expect(again).rejects.toThrow(/already exists/);
    await engine.importDatabase(dsn(), target(), { fresh: false });
    expect(await count()).toBe(200000);
    const c = new Client({ host: '127.0.0.1', port, user: 'cloud_admin', password, database: 'postgres' });
    await c.connect();
    // The platform's extension is back; the database belongs to the user.
    const r = await c.query("SELECT (SELECT count(*)::int FROM pg_extension WHERE extname = 'pg_stat_statements') AS pss, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'postgres'");
    await c.end();
    expect(r.rows[0]).toEqual({ pss: 1, owner: 'cloud_admin' });
    expect(fs.existsSync(`${engine.layout.branchDataDir(branchId)}.importing`)).toBe(false);
  });

  it('a second attempt in this process stops the first one', async () => {
    const first = engine.importDatabase(dsn(), target(), { fresh: false });
    const second = engine.importDatabase(dsn(), target(), { fresh: false });
    await expect(first).rejects.toThrow(/cancelled/);
    await second;
    expect(await count()).toBe(200000);
  });

  it('programs a dead worker left (named by the .importing file) are stopped before the data goes', async () => {
    const orphan = spawn('sleep', ['120'], { detached: true, stdio: 'ignore' });
    orphan.unref();
    await new Promise((r) => orphan.once('spawn', r));
    const lock = `${engine.layout.branchDataDir(branchId)}.importing`;
    fs.writeFileSync(lock, JSON.stringify({ pgids: [orphan.pid] }));
    expect(groupAlive(orphan.pid!)).toBe(true);
    await engine.stopEndpoint({ branchId, endpointId });
    await engine.removeBranchData(branchId);
    expect(groupAlive(orphan.pid!)).toBe(false);
    expect(fs.existsSync(lock)).toBe(false);
    expect(fs.existsSync(engine.layout.branchDataDir(branchId))).toBe(false);
  });
});
