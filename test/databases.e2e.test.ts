import { startTestStack, TestStack } from './support/stack';
import { consoleOf, HOSTILE } from './support/console';

describe('databases and schema browsing', () => {
  let t: TestStack;
  let project: any;
  let c: ReturnType<typeof consoleOf>;

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'dbs' } })).body;
    c = consoleOf(t, project);
    await c.sql('CREATE TABLE canary (id int PRIMARY KEY, note text DEFAULT \'x\')');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists, creates and drops databases; a hostile name is created literally and nothing else runs', async () => {
    const list = await c.req('GET', '/databases');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ name: 'postgres', encoding: 'UTF8', owner: 'cloud_admin' })]);
    expect(list.body[0].size_bytes).toBeGreaterThan(1_000_000);

    expect((await c.req('POST', '/databases', { name: 'myapp' })).status).toBe(201);
    const hostile = await c.req('POST', '/databases', { name: HOSTILE });
    expect(hostile.status).toBe(201);
    expect((await c.req('GET', '/databases')).body.map((d: any) => d.name)).toEqual(['myapp', 'postgres', HOSTILE].sort());
    expect(await c.sql("SELECT to_regclass('canary') IS NOT NULL AS here")).toEqual([{ here: true }]);

    const dup = await c.req('POST', '/databases', { name: 'myapp' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.details.sqlstate).toBe('42P04');
    expect((await c.req('POST', '/databases', { name: 'a\u0000b' })).status).toBe(422);
    expect((await c.req('POST', '/databases', { name: 'é'.repeat(40) })).status).toBe(422);

    // A database the console used (its pool holds sessions there) drops all the same.
    expect(await c.sql('SELECT current_database() AS d', 'myapp')).toEqual([{ d: 'myapp' }]);
    expect((await c.req('DELETE', '/databases/myapp')).status).toBe(204);
    expect((await c.req('DELETE', `/databases/${encodeURIComponent(HOSTILE)}`)).status).toBe(204);
    expect((await c.req('DELETE', '/databases/myapp')).status).toBe(404);
    expect((await c.req('DELETE', '/databases/postgres')).status).toBe(409);
    expect((await c.req('DELETE', '/databases/template1')).status).toBe(404);
  });

  it('browses databases → schemas → tables with columns, on the primary or a named branch', async () => {
    await c.sql('CREATE SCHEMA app; CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now()); CREATE VIEW app.emails AS SELECT email FROM app.users');
    const base = `/v1/projects/${project.id}/schema`;
    const dbs = await t.request('GET', base);
    expect(dbs.body).toMatchObject({ type: 'databases', items: [expect.objectContaining({ name: 'postgres' })] });
    const schemas = await t.request('GET', `${base}?database=postgres`);
    expect(schemas.body).toEqual({ type: 'schemas', items: [{ name: 'app', owner: 'cloud_admin' }, { name: 'public', owner: expect.any(String) }] });
    const tables = await t.request('GET', `${base}?database=postgres&schema=app`);
    expect(tables.body.type).toBe('tables');
    expect(tables.body.items).toEqual([
      { name: 'emails', kind: 'view', columns: [{ name: 'email', type: 'text', nullable: true, default: null }] },
      {
        name: 'users',
        kind: 'table',
        columns: [
          { name: 'id', type: 'bigint', nullable: false, default: "nextval('app.users_id_seq'::regclass)" },
          { name: 'email', type: 'text', nullable: false, default: null },
          { name: 'created_at', type: 'timestamp with time zone', nullable: true, default: 'now()' },
        ],
      },
    ]);
    const branch = await t.request('POST', `/v1/projects/${project.id}/branches`, { body: { name: 'dev' } });
    expect([201, 202]).toContain(branch.status);
    await c.sql('DROP VIEW app.emails');
    const onBranch = await t.request('GET', `${base}?database=postgres&schema=app&branch_id=${branch.body.id}`);
    expect(onBranch.status).toBe(200);
    expect(onBranch.body.items.map((x: any) => x.name)).toEqual(['emails', 'users']);
    expect((await t.request('GET', `${base}?database=postgres&schema=app`)).body.items.map((x: any) => x.name)).toEqual(['users']);
    expect((await t.request('GET', `${base}?database=nope`)).status).toBe(404);
    expect((await t.request('GET', `${base}?database=postgres&schema=nope`)).status).toBe(404);
    expect((await t.request('GET', `${base}?schema=app`)).status).toBe(422);
  });
});
