import { startTestStack, TestStack } from './support/stack';
import { consoleOf } from './support/console';
import { TEST_MAJORS, testPgInstalls } from './support/pg';

describe('extensions', () => {
  let t: TestStack;
  beforeAll(async () => {
    t = await startTestStack();
  });
  afterAll(async () => {
    await t?.stop();
  });

  describe.each(TEST_MAJORS)('on Postgres %i', (major) => {
    let c: ReturnType<typeof consoleOf>;
    beforeAll(async () => {
      const project = (await t.request('POST', '/v1/projects', { body: { name: `ext-${major}`, pg_version: major } })).body;
      c = consoleOf(t, project);
    });

    it("lists exactly what this major's server has, and agrees with the import's catalog", async () => {
      const r = await c.req('GET', '/extensions');
      expect(r.status).toBe(200);
      const names = r.body.map((e: any) => e.name);
      const files = (await testPgInstalls().availableExtensions(major)).map((e) => e.name);
      expect([...names].sort()).toEqual([...files].sort());
      expect(r.body.find((e: any) => e.name === 'plpgsql')).toMatchObject({ installed: true, installable: true });
      expect(r.body.find((e: any) => e.name === 'pg_stat_statements')).toMatchObject({ installed: true });
      expect(names.includes('pgcrypto')).toBe(await testPgInstalls().hasTls(major));
    });

    it('installs a trusted extension as cloud_admin and a platform one by the platform; uninstalls both', async () => {
      const trusted = await c.req('POST', '/extensions', { name: 'pg_trgm' });
      expect(trusted.status).toBe(201);
      expect(trusted.body).toMatchObject({ name: 'pg_trgm', installed: true, version: expect.any(String) });
      expect(await c.sql("SELECT similarity('word', 'words') > 0.5 AS close")).toEqual([{ close: true }]);
      const platform = await c.req('POST', '/extensions', { name: 'pg_buffercache' });
      expect(platform.status).toBe(201);
      expect(await c.sql('SELECT count(*) > 0 AS any FROM pg_buffercache')).toEqual([{ any: true }]);
      expect((await c.req('POST', '/extensions', { name: 'pg_trgm' })).status).toBe(201);
      expect((await c.req('DELETE', '/extensions/pg_trgm')).status).toBe(204);
      expect((await c.req('DELETE', '/extensions/pg_buffercache')).status).toBe(204);
      expect((await c.req('DELETE', '/extensions/pg_buffercache')).status).toBe(404);
      expect((await c.req('GET', '/extensions')).body.find((e: any) => e.name === 'pg_buffercache').installed).toBe(false);
    });

    it('refuses what reaches the host, and what the server does not have', async () => {
      const fdw = await c.req('POST', '/extensions', { name: 'file_fdw' });
      expect(fdw.status).toBe(403);
      expect((await c.req('POST', '/extensions', { name: 'no_such_ext' })).status).toBe(404);
      expect((await c.req('POST', '/extensions', { name: 'x"; DROP TABLE t; --' })).status).toBe(404);
      expect((await c.req('DELETE', '/extensions/plpgsql')).status).toBe(409);
    });
  });

  it('vector (pgvector, which the PostgreSQL 18 wheel ships), installed by the platform', async () => {
    const project = (await t.request('POST', '/v1/projects', { body: { name: 'vec', pg_version: 18 } })).body;
    const c = consoleOf(t, project);
    expect((await c.req('GET', '/extensions')).body.find((e: any) => e.name === 'vector')).toMatchObject({ installed: false, installable: true });
    expect((await c.req('POST', '/extensions', { name: 'vector' })).status).toBe(201);
    expect(await c.sql("SELECT '[1,2]'::vector <-> '[1,3]'::vector AS d")).toEqual([{ d: 1 }]);
  });
});
