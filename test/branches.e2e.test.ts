import fs from 'node:fs';
import { startTestStack, TestStack } from './support/stack';
import { psql } from './support/clients';
import { branchDirNames, postgresUnder } from './support/host';

const q = async (cs: string, sql: string) => {
  const r = await psql(cs, sql);
  if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
};

/**
 * The branch tests run once per storage driver. globalSetup fails when it cannot make the btrfs
 * volume, unless LAMPION_TEST_NO_BTRFS=1 says to leave that driver out knowingly.
 */
const drivers: { driver: 'btrfs' | 'copy'; dataDir?: () => string }[] = [
  { driver: 'copy' },
  ...(process.env.LAMPION_TEST_NO_BTRFS === '1' ? [] : [{ driver: 'btrfs' as const, dataDir: () => process.env.LAMPION_TEST_BTRFS_DIR! }]),
];

describe.each(drivers)('branches on the $driver driver', ({ driver, dataDir }) => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;

  beforeAll(async () => {
    const extra: Record<string, string> = { LAMPION_STORAGE_DRIVER: driver };
    if (dataDir) {
      const dir = `${dataDir()}/stack-${Date.now()}`;
      fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
      extra.LAMPION_DATA_DIR = dir;
    }
    t = await startTestStack(extra);
    const res = await t.request('POST', '/v1/projects', { body: { name: `branches-${driver}` } });
    expect(res.status).toBe(201);
    project = res.body;
    expect(project.storage_driver).toBe(driver);
    await q(project.connection_string, "CREATE TABLE users (id serial primary key, name text); INSERT INTO users (name) VALUES ('alice'), ('bob')");
  });
  afterAll(async () => {
    await t?.stop();
  });

  let child: any;

  it('forks the parent with its rows; writes stay on their side', async () => {
    const seed = await t.request('POST', path('/seeds'), { body: { name: 'fixtures', sql: "INSERT INTO users (name) VALUES ('seeded');" } });
    expect(seed.status).toBe(201);

    const res = await t.request('POST', path('/branches'), { body: { name: 'feature-x' } });
    expect(res.status).toBe(201);
    child = res.body;
    expect(child).toMatchObject({ name: 'feature-x', parent_id: project.branch_id, is_primary: false, storage_driver: driver, status: 'ready' });
    expect(child.compute_id).toMatch(/^ep-/);
    expect(child.parent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(child.seeds).toEqual([expect.objectContaining({ name: 'fixtures', status: 'succeeded' })]);
    expect(child.connection_string).toContain(`/${child.compute_id}.postgres?sslmode=require`);

    expect(await q(child.connection_string, 'SELECT string_agg(name, \',\' ORDER BY id) FROM users')).toBe('alice,bob,seeded');
    await q(child.connection_string, "INSERT INTO users (name) VALUES ('child-only')");
    await q(project.connection_string, "INSERT INTO users (name) VALUES ('parent-only')");
    expect(await q(project.connection_string, "SELECT count(*) FROM users WHERE name IN ('child-only', 'seeded')")).toBe('0');
    expect(await q(child.connection_string, "SELECT count(*) FROM users WHERE name = 'parent-only'")).toBe('0');

    const list = await t.request('GET', path('/branches'));
    expect(list.body.map((b: any) => b.name)).toEqual(['main', 'feature-x']);
    const dup = await t.request('POST', path('/branches'), { body: { name: 'feature-x' } });
    expect(dup.status).toBe(409);
  });

  it('resets the child to the parent’s current rows with seeds, keeping the connection string', async () => {
    const res = await t.request('POST', path(`/branches/${child.id}/reset`));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: child.id, compute_id: child.compute_id, status: 'ready', connection_string: child.connection_string });
    expect(await q(child.connection_string, "SELECT string_agg(name, ',' ORDER BY id) FROM users")).toBe('alice,bob,parent-only,seeded');
  });

  it('answers one of two concurrent operations on a branch with 409', async () => {
    const [a, b] = await Promise.all([
      t.request('POST', path(`/branches/${child.id}/reset`)),
      t.request('POST', path(`/branches/${child.id}/reset`)),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(await q(child.connection_string, 'SELECT count(*) FROM users')).toBe('4');
  });

  it('refuses to delete the primary, a protected branch and a branch with children', async () => {
    const primary = await t.request('DELETE', path(`/branches/${project.branch_id}`));
    expect(primary.status).toBe(409);
    expect(primary.body.error.message).toMatch(/primary/);

    const grandchild = await t.request('POST', path('/branches'), { body: { name: 'nested', parent_id: child.id } });
    expect(grandchild.status).toBe(201);
    const withChildren = await t.request('DELETE', path(`/branches/${child.id}`));
    expect(withChildren.status).toBe(409);
    expect(withChildren.body.error.message).toContain(grandchild.body.id);

    expect((await t.request('PATCH', path(`/branches/${grandchild.body.id}`), { body: { protected: true, ttl_hours: 24 } })).body).toMatchObject({
      protected: true,
      ttl_hours: 24,
    });
    const prot = await t.request('DELETE', path(`/branches/${grandchild.body.id}`));
    expect(prot.status).toBe(409);
    expect(prot.body.error.message).toMatch(/protected/);
    await t.request('PATCH', path(`/branches/${grandchild.body.id}`), { body: { protected: false } });
    expect((await t.request('DELETE', path(`/branches/${grandchild.body.id}`))).status).toBe(204);
  });

  it('deletes a branch: compute stopped, data gone, connection refused', async () => {
    const dir = t.stack.engine.layout.branchDataDir(child.id);
    expect(fs.existsSync(dir)).toBe(true);
    expect((await t.request('DELETE', path(`/branches/${child.id}`))).status).toBe(204);
    expect(fs.existsSync(dir)).toBe(false);
    expect(postgresUnder(dir)).toEqual([]);
    const r = await psql(child.connection_string, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect((await t.request('GET', path(`/branches/${child.id}`))).status).toBe(404);
  });

  it('leaves no branch, process or data dir when a seed fails, and names the seed', async () => {
    const bad = await t.request('POST', path('/seeds'), { body: { name: 'broken', sql: 'INSERT INTO missing_table VALUES (1);' } });
    expect(bad.status).toBe(201);
    const before = branchDirNames(t.stack.engine.layout);
    const res = await t.request('POST', path('/branches'), { body: { name: 'doomed' } });
    expect(res.status).toBe(422);
    expect(res.body.error.message).toMatch(/seed "broken" failed: relation "missing_table" does not exist/);
    expect(res.body.error.details.failure).toMatchObject({ seed_name: 'broken' });
    expect(res.body.error.details.failure.seeds.map((x: any) => [x.name, x.status])).toEqual([
      ['fixtures', 'succeeded'],
      ['broken', 'failed'],
    ]);
    expect(branchDirNames(t.stack.engine.layout)).toEqual(before);
    const names = (await t.request('GET', path('/branches'))).body.map((b: any) => b.name);
    expect(names).not.toContain('doomed');
    expect((await t.request('DELETE', path(`/seeds/${bad.body.id}`))).status).toBe(204);
  });

  it('runs seeds whose SQL together exceeds a Temporal payload (3 × 900 kB)', async () => {
    const pad = `-- ${'x'.repeat(900_000)}\n`;
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const s = await t.request('POST', path('/seeds'), { body: { name: `big-${n}`, sql: `${pad}INSERT INTO users (name) VALUES ('big-${n}');` } });
      expect(s.status).toBe(201);
      ids.push(s.body.id);
    }
    const res = await t.request('POST', path('/branches'), { body: { name: 'big-seeds' } });
    expect(res.status).toBe(201);
    expect(res.body.seeds.map((x: any) => x.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(await q(res.body.connection_string, "SELECT count(*) FROM users WHERE name LIKE 'big-%'")).toBe('3');
    for (const id of ids) expect((await t.request('DELETE', path(`/seeds/${id}`))).status).toBe(204);
    expect((await t.request('DELETE', path(`/branches/${res.body.id}`))).status).toBe(204);
  });
});
