/**
 * Postgres majors side by side on one platform: a project chooses its major, its branches keep
 * it, everything a project does today works on each (fork, seeds, suspend and wake through the
 * proxy, the guard), and the extension catalog is what each major really ships.
 */
import { startTestStack, TestStack } from './support/stack';
import { psql, psqlOk } from './support/clients';
import { TEST_MAJORS } from './support/pg';

jest.setTimeout(180_000);

const q = psqlOk;

describe('Postgres majors', () => {
  let t: TestStack;
  beforeAll(async () => {
    t = await startTestStack();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists the installed majors in /health and defaults new projects to the newest', async () => {
    const h = await t.request('GET', '/health', { key: null });
    expect(h.body.postgres).toEqual({ versions: TEST_MAJORS, default: TEST_MAJORS[TEST_MAJORS.length - 1] });
    const bad = await t.request('POST', '/v1/projects', { body: { name: 'nope', pg_version: 16 } });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body)).toMatch(/unsupported Postgres major/);
    for (const v of ['18', 18.5, -1]) expect((await t.request('POST', '/v1/projects', { body: { name: 'nope', pg_version: v } })).status).toBe(422);
  });

  it.each(TEST_MAJORS)('Postgres %i: project, branch, seed, suspend and wake, guard', async (major) => {
    const p = (await t.request('POST', '/v1/projects', { body: { name: `pg-${major}`, pg_version: major } })).body;
    expect(p.pg_version).toBe(major);
    expect(p.user_can_create_roles).toBe(true);
    expect(await q(p.connection_string, "SELECT current_setting('server_version_num')::int / 10000")).toBe(String(major));
    // The guard: cloud_admin may create roles but not hand out host access.
    const grant = await psql(p.connection_string, 'GRANT pg_execute_server_program TO cloud_admin');
    expect(grant.code).not.toBe(0);
    await q(p.connection_string, 'CREATE TABLE t (v text); INSERT INTO t VALUES ($$parent$$)');
    await t.request('POST', `/v1/projects/${p.id}/seeds`, { body: { name: 'fixture', sql: "INSERT INTO t VALUES ('seeded');" } });
    const b = (await t.request('POST', `/v1/projects/${p.id}/branches`, { body: { name: 'child' } })).body;
    expect(b.pg_version).toBe(major);
    expect(await q(b.connection_string, "SELECT current_setting('server_version_num')::int / 10000")).toBe(String(major));
    expect(await q(b.connection_string, "SELECT string_agg(v, ',' ORDER BY v) FROM t")).toBe('parent,seeded');
    const ep = (await t.request('GET', `/v1/projects/${p.id}/endpoints/${b.compute_id}`)).body;
    expect(ep.pg_version).toBe(major);
    expect((await t.request('POST', `/v1/projects/${p.id}/endpoints/${b.compute_id}/suspend`)).body.status).toBe('suspended');
    // Wake on connect through the proxy.
    expect(await q(b.connection_string, 'SELECT count(*) FROM t')).toBe('2');
  });

  it('each major shows the extensions it ships: the OpenSSL-less 18 build has no pgcrypto', async () => {
    const pgs = t.stack.engine.pgs;
    for (const major of TEST_MAJORS) {
      const names = (await pgs.availableExtensions(major)).map((e) => e.name);
      expect(names).toContain('pg_stat_statements');
      expect(names.includes('pgcrypto')).toBe(await pgs.hasTls(major));
    }
  });
});
