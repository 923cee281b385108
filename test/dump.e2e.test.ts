import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { execFile } from 'node:child_process';
import { startTestStack, TestStack } from './support/stack';
import { psql } from './support/clients';
import { clientBin, TEST_MAJORS } from './support/pg';
import { DUMP_APPLICATION_NAME } from '../src/domain/pgsql/dump';

const HOSTILE = 'x"; DROP TABLE users; --';

// A real GC before measuring memory (jest's node runs without --expose-gc).
v8.setFlagsFromString('--expose-gc');
const gc: () => void = vm.runInNewContext('gc');
const COMPLETE = '-- PostgreSQL database dump complete';

/** psql running a whole file, stopping at the first error (what a careful restore does). */
function psqlFile(connectionString: string, file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      clientBin('psql'),
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', file, connectionString],
      { env: { ...process.env, PGCONNECT_TIMEOUT: '10' }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, stdout, stderr }),
    );
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('GET …/endpoints/{id}/dump', () => {
  let t: TestStack;
  let tmp: string;

  beforeAll(async () => {
    t = await startTestStack();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-dump-'));
  });
  afterAll(async () => {
    await t?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe.each(TEST_MAJORS)('on Postgres %i', (major) => {
    let project: any;
    const url = (query = '') => `${t.api}/v1/projects/${project.id}/endpoints/${project.endpoint_id}/dump${query}`;
    const dump = (query = '', init: { key?: string; signal?: AbortSignal } = {}) =>
      fetch(url(query), { headers: { authorization: `Bearer ${init.key ?? t.ownerKey}` }, signal: init.signal });
    /** The project's connection string (through the proxy, TLS) for another database. */
    const conn = (database: string) => project.connection_string.replace(`/${project.endpoint_id}.postgres?`, `/${project.endpoint_id}.${database}?`);
    const sql = async (database: string, text: string) => {
      const r = await psql(conn(database), text);
      if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
      return r.stdout.trim();
    };
    const checksum = (database: string, table: string) =>
      sql(database, `SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM ${table} r`);
    const restore = async (text: string, into: string, prepare?: string) => {
      const file = path.join(tmp, `${into}.sql`);
      fs.writeFileSync(file, text);
      await sql('postgres', `CREATE DATABASE ${into}`);
      if (prepare) await sql(into, prepare);
      const r = await psqlFile(conn(into), file);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    };

    beforeAll(async () => {
      const res = await t.request('POST', '/v1/projects', { body: { name: `dump-${major}`, pg_version: major } });
      expect(res.status).toBe(201);
      project = res.body;
      expect(project.pg_version).toBe(major);
      await sql(
        'postgres',
        `CREATE EXTENSION citext;
         CREATE TABLE users (id int PRIMARY KEY, email citext NOT NULL UNIQUE, note text);
         INSERT INTO users SELECT g, 'User' || g || '@example.com', CASE WHEN g % 7 = 0 THEN E'tab\\there, quote '' and \\\\ backslash' END FROM generate_series(1, 5000) g;
         CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES users, total numeric(10,2));
         INSERT INTO orders (user_id, total) SELECT 1 + g % 5000, g * 1.25 FROM generate_series(1, 3000) g;
         CREATE VIEW big_spenders AS SELECT user_id, sum(total) AS spent FROM orders GROUP BY user_id HAVING sum(total) > 1000;`,
      );
    });

    it('streams a whole database as SQL that restores into a fresh database with the same rows', async () => {
      const res = await dump();
      if (res.status !== 200) throw new Error(`dump answered ${res.status}: ${await res.text()}`);
      expect(res.headers.get('content-type')).toBe('application/sql');
      expect(res.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="${project.endpoint_id}-postgres-\\d{8}T\\d{6}Z\\.sql"$`));
      expect(res.headers.get('transfer-encoding')).toBe('chunked');
      const text = await res.text();
      expect(text).toContain(`-- Dumped from database version ${major}.`);
      expect(text).toContain(COMPLETE);
      expect(text).toContain('CREATE VIEW public.big_spenders');
      // The user's extension comes along; the platform's (which needs a superuser) does not.
      expect(text).toContain('CREATE EXTENSION IF NOT EXISTS citext');
      expect(text).not.toContain('pg_stat_statements');

      await restore(text, 'restored');
      for (const table of ['users', 'orders']) expect(await checksum('restored', table)).toBe(await checksum('postgres', table));
      expect(await sql('restored', "SELECT id FROM users WHERE email = 'user42@EXAMPLE.com'")).toBe('42');
      expect(await sql('restored', 'SELECT count(*) FROM big_spenders')).toBe(await sql('postgres', 'SELECT count(*) FROM big_spenders'));
      // The identity goes on where the source left it.
      expect(await sql('restored', 'WITH i AS (INSERT INTO orders (user_id, total) VALUES (1, 1) RETURNING id) SELECT id FROM i')).toBe('3001');
    });

    it('dumps one table with ?table=, qualified or not, and another database with ?database=', async () => {
      for (const table of ['orders', 'public.orders']) {
        const res = await dump(`?table=${encodeURIComponent(table)}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-disposition')).toContain(`-postgres-${table}-`);
        const text = await res.text();
        expect(text).toContain('CREATE TABLE public.orders');
        expect(text).not.toContain('CREATE TABLE public.users');
        expect(text).not.toContain('big_spenders');
        expect(text).toContain(COMPLETE);
      }
      await sql('postgres', 'CREATE DATABASE other');
      await sql('other', "CREATE TABLE only_here (v text); INSERT INTO only_here VALUES ('from other')");
      const text = await (await dump('?database=other')).text();
      expect(text).toContain('CREATE TABLE public.only_here');
      expect(text).toContain('from other');
      expect(text).not.toContain('public.users');
    });

    it('matches hostile and wildcard table names literally, as exactly one table', async () => {
      await sql(
        'postgres',
        `CREATE TABLE "${HOSTILE.replace(/"/g, '""')}" (v text); INSERT INTO "${HOSTILE.replace(/"/g, '""')}" VALUES ('hostile row');
         CREATE TABLE "t*" (v text); INSERT INTO "t*" VALUES ('star');
         CREATE TABLE tx (v text); INSERT INTO tx VALUES ('not me');
         CREATE SCHEMA "Odd.Schema"; CREATE TABLE "Odd.Schema"."a.b" (v text); INSERT INTO "Odd.Schema"."a.b" VALUES ('dotted');`,
      );
      const usersBefore = await checksum('postgres', 'users');

      const hostile = await dump(`?table=${encodeURIComponent(HOSTILE)}`);
      expect(hostile.status).toBe(200);
      expect(hostile.headers.get('content-disposition')).toMatch(/^attachment; filename="[A-Za-z0-9._-]+"; filename\*=UTF-8''/);
      const text = await hostile.text();
      expect(text).toContain('CREATE TABLE public."x""; DROP TABLE users; --"');
      expect(text).toContain('hostile row');
      expect(text).not.toMatch(/CREATE TABLE public\.(users|orders|tx|"t\*")/);
      // Restored next to a users table, it creates the one table and drops nothing.
      await restore(text, 'hostile', 'CREATE TABLE users (id int); INSERT INTO users VALUES (42)');
      expect(await sql('hostile', `SELECT v FROM "${HOSTILE.replace(/"/g, '""')}"`)).toBe('hostile row');
      expect(await sql('hostile', 'SELECT id FROM users')).toBe('42');
      expect(await sql('hostile', "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")).toBe(`users,${HOSTILE}`);
      expect(await checksum('postgres', 'users')).toBe(usersBefore);

      const star = await (await dump(`?table=${encodeURIComponent('t*')}`)).text();
      expect(star).toContain('CREATE TABLE public."t*"');
      expect(star).not.toContain('CREATE TABLE public.tx');
      expect(star).not.toContain('not me');

      const dotted = await (await dump(`?table=${encodeURIComponent('Odd.Schema.a.b')}`)).status;
      // The first dot separates the schema: "Odd" does not exist.
      expect(dotted).toBe(404);
      await sql('postgres', `CREATE TABLE "a.b" (v text); INSERT INTO "a.b" VALUES ('public dotted')`);
      const publicDotted = await (await dump(`?table=${encodeURIComponent('public.a.b')}`)).text();
      expect(publicDotted).toContain('CREATE TABLE public."a.b"');
      expect(publicDotted).toContain('public dotted');
      expect(publicDotted).not.toContain("'dotted'");
    });

    it('answers 404 JSON for an unknown database or table, 422 for a malformed name, 403 below developer', async () => {
      const noDb = await dump('?database=nope');
      expect(noDb.status).toBe(404);
      expect(noDb.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await noDb.json()) as any).error).toMatchObject({ code: 'not_found', message: 'database "nope" not found on endpoint ' + project.endpoint_id });

      const noTable = await dump('?table=public.nope');
      expect(noTable.status).toBe(404);
      expect(((await noTable.json()) as any).error).toMatchObject({ code: 'not_found', message: 'table "public.nope" not found in database "postgres"' });
      // Case matters: names are as stored.
      expect((await dump('?table=Users')).status).toBe(404);

      for (const bad of ['?database=a%00b', '?database=a%0Ab', `?database=${'x'.repeat(64)}`, '?table=a%00b', '?table=.users', '?table=a&table=b']) {
        const res = await dump(bad);
        expect({ bad, status: res.status }).toEqual({ bad, status: 422 });
        expect(((await res.json()) as any).error.code).toBe('validation_failed');
      }
      const viewer = await t.key('viewer');
      const refused = await dump('', { key: viewer });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as any).error.message).toMatch(/endpoint\.dump/);
      const doc = (await t.request('GET', '/v1/openapi.json', { key: null })).body;
      const documented = doc.paths['/v1/projects/{project_id}/endpoints/{endpoint_id}/dump'].get;
      expect(Object.keys(documented.responses['200'].content)).toEqual(['application/sql']);
      expect(documented.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['database', 'table']));
      // Another organization does not see the endpoint at all.
      expect((await dump('', { key: await t.key('owner', { orgId: 'org-dump-other' }) })).status).toBe(404);
    });

    it('wakes a suspended compute and dumps it', async () => {
      const ep = `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`;
      expect((await t.request('POST', `${ep}/suspend`)).body).toMatchObject({ status: 'suspended' });
      expect(await t.stack.engine.endpointRunning({ branchId: project.branch_id })).toBe(false);
      const res = await dump('?table=users');
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('User4999@example.com');
      expect(text).toContain(COMPLETE);
      expect((await t.request('GET', ep)).body.status).toBe('running');
      const events = await t.stack.db.selectFrom('compute_events').select('event').where('endpoint_id', '=', project.endpoint_id).orderBy('id').execute();
      expect(events.at(-1)).toEqual({ event: 'resume' });
    });

    describe('a big dump', () => {
      const ROWS = 200_000;
      const activeDumps = () => sql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${DUMP_APPLICATION_NAME}'`);

      beforeAll(async () => {
        // Room to work: the default 0.25 CU would make 200 MB slow, not different.
        await t.request('PATCH', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`, { body: { compute_cu: 2 } });
        await sql('postgres', 'CREATE DATABASE big');
        // ~1 KB a row, uncompressed (under the TOAST threshold): ~200 MB of COPY text.
        await sql('big', `CREATE UNLOGGED TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, ${ROWS}) g`);
      });

      it('streams ~200 MB in constant memory', async () => {
        // The stack runs in this process. RSS is what the brief of the route promises, but memory a
        // process once had stays in its RSS; live Buffer memory (arrayBuffers, after a GC) tells
        // whatever ran before.
        // Backing stores of collected buffers are released after the GC, by a background sweep.
        for (let i = 0; i < 3; i++) {
          gc();
          await new Promise((r) => setTimeout(r, 50));
        }
        const usage = () => process.memoryUsage();
        const before = usage();
        const peak = { rss: before.rss, arrayBuffers: before.arrayBuffers };
        const sampler = setInterval(() => {
          const u = usage();
          peak.rss = Math.max(peak.rss, u.rss);
          peak.arrayBuffers = Math.max(peak.arrayBuffers, u.arrayBuffers);
        }, 10);
        let bytes = 0;
        let tail = '';
        try {
          const res = await dump('?database=big');
          expect(res.status).toBe(200);
          const reader = res.body!.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            bytes += value.byteLength;
            tail = (tail + Buffer.from(value.subarray(Math.max(0, value.byteLength - 4096))).toString('latin1')).slice(-4096);
          }
        } finally {
          clearInterval(sampler);
        }
        expect(bytes).toBeGreaterThan(180e6);
        expect(tail).toContain(COMPLETE);
        // Holding the dump anywhere would grow both by its size at least; streaming, by buffers (and
        // the garbage they leave until a GC).
        expect(peak.rss - before.rss).toBeLessThan(bytes / 2);
        expect(peak.arrayBuffers - before.arrayBuffers).toBeLessThan(bytes / 2);
      });

      it('cuts the response off, not short, when the dump fails midway', async () => {
        const res = await dump('?database=big');
        expect(res.status).toBe(200);
        const reader = res.body!.getReader();
        let received = (await reader.read()).value!.byteLength;
        // The client reads nothing meanwhile, so pg_dump is held mid-table by backpressure.
        expect(await sql('postgres', `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${DUMP_APPLICATION_NAME}' AND datname = 'big'`)).toBe('1');
        let tail = '';
        const read = (async () => {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return 'ended';
            received += value.byteLength;
            tail = (tail + Buffer.from(value.subarray(Math.max(0, value.byteLength - 4096))).toString('latin1')).slice(-4096);
          }
        })();
        await expect(read).rejects.toThrow();
        expect(received).toBeLessThan(180e6);
        expect(tail).not.toContain(COMPLETE);
      });

      it('makes curl report the broken transfer, with the file not looking complete', async () => {
        const file = path.join(tmp, `broken-${major}.sql`);
        const curl = new Promise<{ code: number; stderr: string }>((resolve) =>
          execFile('curl', ['-sS', '--limit-rate', '8M', '-H', `Authorization: Bearer ${t.ownerKey}`, '-o', file, url('?database=big')], (err, _o, stderr) =>
            resolve({ code: err ? ((err as any).code as number) : 0, stderr }),
          ),
        );
        await waitFor(async () => (await activeDumps()) === '1' && fs.existsSync(file) && fs.statSync(file).size > 0);
        await sql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${DUMP_APPLICATION_NAME}' AND datname = 'big'`);
        const r = await curl;
        expect(r).toEqual({ code: 18, stderr: expect.stringContaining('transfer closed with outstanding read data remaining') });
        const size = fs.statSync(file).size;
        const fd = fs.openSync(file, 'r');
        const last = Buffer.alloc(Math.min(size, 4096));
        fs.readSync(fd, last, 0, last.length, size - last.length);
        fs.closeSync(fd);
        expect(last.toString('latin1')).not.toContain(COMPLETE);
      });

      it('stops pg_dump when the client goes away', async () => {
        const abort = new AbortController();
        const res = await dump('?database=big', { signal: abort.signal });
        expect(res.status).toBe(200);
        await res.body!.getReader().read();
        expect(await activeDumps()).toBe('1');
        abort.abort();
        await waitFor(async () => (await activeDumps()) === '0');
      });
    });
  });
});
