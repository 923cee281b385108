import { Client } from 'pg';
import { startTestStack, TestStack } from './support/stack';
import { consoleOf, HOSTILE } from './support/console';

describe('roles and permissions', () => {
  let t: TestStack;
  let project: any;
  let c: ReturnType<typeof consoleOf>;
  /** A login as another role through the proxy. */
  const loginAs = async (role: string, password: string) => {
    const url = new URL(project.connection_string);
    url.username = encodeURIComponent(role);
    url.password = encodeURIComponent(password);
    const client = new Client({ connectionString: url.toString().replace(/\?.*$/, ''), ssl: { rejectUnauthorized: false } });
    await client.connect();
    return client;
  };

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'roles' } })).body;
    c = consoleOf(t, project);
    await c.sql('CREATE TABLE canary (id int); CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, \'a@x\')');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists roles truthfully (cloud_admin is no superuser; the platform\'s own are hidden)', async () => {
    const r = await c.req('GET', '/roles');
    expect(r.status).toBe(200);
    expect(r.body).toEqual([{ name: 'cloud_admin', is_superuser: false, can_login: true, can_create_db: true, can_create_role: expect.any(Boolean) }]);
  });

  it('creates a login role whose password works and never appears in statistics; resets it once', async () => {
    const pw = 'correct-horse-battery';
    const made = await c.req('POST', '/roles', { name: 'appuser', password: pw, can_login: true });
    expect(made.status).toBe(201);
    expect(made.body).toEqual({ name: 'appuser', can_login: true });
    const conn = await loginAs('appuser', pw);
    expect((await conn.query('SELECT current_user AS u')).rows).toEqual([{ u: 'appuser' }]);
    await conn.end();
    const texts = await c.sql("SELECT count(*) AS n FROM pg_stat_statements WHERE query LIKE '%correct-horse%'");
    expect(texts).toEqual([{ n: '0' }]);

    const reset = await c.req('POST', '/roles/appuser/reset-password');
    expect(reset.status).toBe(200);
    expect(reset.headers.get('cache-control')).toBe('no-store');
    await expect(loginAs('appuser', pw)).rejects.toThrow(/password authentication failed/);
    const again = await loginAs('appuser', reset.body.password);
    await again.end();
    expect((await c.req('POST', '/roles/cloud_admin/reset-password')).status).toBe(409);
    expect((await c.req('POST', '/roles/nobody/reset-password')).status).toBe(404);
    expect((await c.req('POST', '/roles', { name: 'appuser' })).status).toBe(409);
    expect((await c.req('POST', '/roles', { name: 'pg_evil' })).status).toBe(422);
    expect((await c.req('POST', '/roles', { name: 'lampion_system' })).status).toBe(422);
    expect((await c.req('POST', '/roles', { name: 'weak', password: 'short' })).status).toBe(422);
  });

  it('grants and revokes listed privileges only; the grantee can do exactly that', async () => {
    const g = await c.req('POST', '/permissions/grant', { role: 'appuser', schema: 'public', table: 'users', privileges: ['SELECT', 'INSERT'] });
    expect(g.status).toBe(200);
    expect(g.body).toEqual({ role: 'appuser', table: 'public.users', granted: ['SELECT', 'INSERT'] });
    const list = await c.req('GET', '/permissions');
    expect(list.body).toEqual([{ table: 'public.users', role: 'appuser', privileges: ['INSERT', 'SELECT'] }]);
    expect((await c.req('GET', '/permissions/tables')).body).toEqual([{ schema: 'public', table: 'canary' }, { schema: 'public', table: 'users' }]);

    const pw = (await c.req('POST', '/roles/appuser/reset-password')).body.password;
    const conn = await loginAs('appuser', pw);
    expect((await conn.query('SELECT email FROM users')).rows).toEqual([{ email: 'a@x' }]);
    await expect(conn.query('DELETE FROM users')).rejects.toThrow(/permission denied/);
    const r = await c.req('POST', '/permissions/revoke', { role: 'appuser', schema: 'public', table: 'users', privileges: ['INSERT'] });
    expect(r.body).toEqual({ role: 'appuser', table: 'public.users', revoked: ['INSERT'] });
    await expect(conn.query("INSERT INTO users VALUES (2, 'b')")).rejects.toThrow(/permission denied/);
    await conn.end();

    expect((await c.req('POST', '/permissions/grant', { role: 'appuser', table: 'users', privileges: ['SELECT; DROP TABLE canary'] })).status).toBe(422);
    expect((await c.req('POST', '/permissions/grant', { role: 'appuser', table: 'nope', privileges: ['SELECT'] })).status).toBe(404);
    expect((await c.req('POST', '/permissions/grant', { role: 'nobody', table: 'users', privileges: ['SELECT'] })).status).toBe(404);
  });

  it('hostile role names are created literally, granted literally, and nothing else runs', async () => {
    expect((await c.req('POST', '/roles', { name: HOSTILE, can_login: false })).status).toBe(201);
    expect((await c.req('POST', '/permissions/grant', { role: HOSTILE, table: 'users', privileges: ['SELECT'] })).status).toBe(200);
    expect((await c.req('GET', '/permissions')).body).toContainEqual({ table: 'public.users', role: HOSTILE, privileges: ['SELECT'] });
    expect(await c.sql("SELECT to_regclass('canary') IS NOT NULL AS here")).toEqual([{ here: true }]);
    // Holding a privilege keeps a role from being dropped: 409 with Postgres's reason.
    const held = await c.req('DELETE', `/roles/${encodeURIComponent(HOSTILE)}`);
    expect(held.status).toBe(409);
    expect(held.body.error).toMatchObject({ code: 'dependent_objects_still_exist', details: { sqlstate: '2BP01', detail: expect.stringContaining('privileges for table users') } });
    await c.req('POST', '/permissions/revoke', { role: HOSTILE, table: 'users', privileges: ['ALL'] });
    expect((await c.req('DELETE', `/roles/${encodeURIComponent(HOSTILE)}`)).status).toBe(204);
    expect((await c.req('DELETE', `/roles/${encodeURIComponent(HOSTILE)}`)).status).toBe(404);
  });

  it('on Postgres 15 too, cloud_admin can hand a role it made its objects', async () => {
    const p15 = (await t.request('POST', '/v1/projects', { body: { name: 'roles-15', pg_version: 15 } })).body;
    const c15 = consoleOf(t, p15);
    expect((await c15.req('POST', '/roles', { name: 'owner15', can_login: false })).status).toBe(201);
    await c15.sql('CREATE TABLE mine (x int); GRANT CREATE ON SCHEMA public TO owner15; ALTER TABLE mine OWNER TO owner15');
    expect(await c15.sql("SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'mine'")).toEqual([{ owner: 'owner15' }]);
    const r = await c15.req('DELETE', '/roles/owner15');
    expect(r.status).toBe(409);
    expect(r.body.error.details.detail).toContain('owner of table mine');
  });

  it('a role owning objects is refused with the objects; cloud_admin is never dropped', async () => {
    await c.req('POST', '/roles', { name: 'owner_role', can_login: false });
    await c.sql('CREATE TABLE owned (x int); GRANT CREATE ON SCHEMA public TO owner_role; ALTER TABLE owned OWNER TO owner_role');
    const r = await c.req('DELETE', '/roles/owner_role');
    expect(r.status).toBe(409);
    expect(r.body.error.details.detail).toContain('owner of table owned');
    expect((await c.req('DELETE', '/roles/cloud_admin')).status).toBe(409);
  });
});
