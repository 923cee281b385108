import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { Client } from 'pg';
import { startTestStack, TestStack, proxyCaFile } from './support/stack';
import { startSourceServer, SourceServer } from './support/sourcePg';
import { databaseSignature, FIXTURE_SQL, notOwnedBy } from './support/importFixtures';
import { testBinDirs } from './support/pg';
import { psql } from './support/clients';

/**
 * Imports from databases outside Lampion, started by this file: a Debian Postgres 15 that accepts
 * only TLS (hostssl lines only, a self-signed certificate) and a Postgres 18 (the embedded build,
 * no TLS at all). Validation answers every bad source with errors (never a 500); imports copy
 * schema and rows exactly into a new branch owned by cloud_admin, on a 15 and an 18 project; a
 * cancelled or failed import leaves nothing; the source's password is nowhere: not in the logs,
 * the catalog, Temporal's history or any answer.
 */

const SECRET = `Imp0rt:S3cr3t/${Math.random().toString(36).slice(2, 10)}@x`;
const WRONG = `Wr0ng:${Math.random().toString(36).slice(2, 10)}`;
const OWNER = 'shop_owner';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pgrep(pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** pg_dump and psql programs this process started (the stack runs in it): an import's. */
function importPrograms(): string[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch {
    // none
  }
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /\b(pg_dump|psql)\b/.test(l));
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('database import', () => {
  let t: TestStack;
  let ca: string;
  const logs: string[] = [];
  /** Every answer of the API in this file, searched for the password at the end. */
  const answers: string[] = [];
  const projects: Record<15 | 18, any> = {} as any;
  let s15: SourceServer;
  let s18: SourceServer;

  const request = async (method: string, url: string, body?: unknown) => {
    const res = await t.request(method, url, body === undefined ? {} : { body });
    answers.push(JSON.stringify(res.body ?? null), res.headers.get('location') ?? '');
    return res;
  };
  const validate = (major: 15 | 18, dsn: string) => request('POST', `/v1/projects/${projects[major].id}/import/validate`, { source_dsn: dsn });
  const start = (major: 15 | 18, dsn: string, name: string) => request('POST', `/v1/projects/${projects[major].id}/import/start`, { source_dsn: dsn, branch_name: name });
  const status = (major: 15 | 18, branchId: string) => request('GET', `/v1/projects/${projects[major].id}/import/${branchId}`);
  const finished = (major: 15 | 18, branchId: string) =>
    until(`import ${branchId} to end`, async () => {
      const r = await status(major, branchId);
      return r.body.status === 'importing' ? undefined : r.body;
    }, 120_000);

  /** A session on a branch's compute through the proxy, as cloud_admin. */
  async function branchClient(major: 15 | 18, computeId: string): Promise<Client> {
    const ep = await request('GET', `/v1/projects/${projects[major].id}/endpoints/${computeId}`);
    expect(ep.status).toBe(200);
    const c = new Client({ host: '127.0.0.1', port: t.stack.proxyPort, user: 'cloud_admin', password: ep.body.pg_password, database: `${computeId}.postgres`, ssl: { ca } });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  async function sourceSignature(s: SourceServer, db: string) {
    const c = await s.admin(db);
    try {
      return await databaseSignature(c);
    } finally {
      await c.end();
    }
  }

  /** A database on a source, owned by a login role with the secret password, filled as that role. */
  async function sourceDb(s: SourceServer, db: string, o: { fixture?: boolean; extensions?: string[]; sql?: string } = {}) {
    await s.sql(`CREATE DATABASE ${db} OWNER ${OWNER}`);
    for (const x of o.extensions ?? []) await s.sql(`CREATE EXTENSION IF NOT EXISTS "${x}"`, db);
    const c = await s.admin(db);
    try {
      await c.query(`SET ROLE ${OWNER}`);
      if (o.fixture) await c.query(FIXTURE_SQL);
      if (o.sql) await c.query(o.sql);
    } finally {
      await c.end();
    }
  }

  const dsn = (s: SourceServer, database: string, params?: string, password = SECRET) => s.dsn({ user: OWNER, password, database, params });

  /** Nothing of the branch anywhere: rows, data dir, WAL archive, endpoint files, processes. */
  async function expectNothingOf(branchId: string, computeId: string) {
    const db = t.stack.db;
    const layout = t.stack.engine.layout;
    expect(await db.selectFrom('branches').select('id').where('id', '=', branchId).execute()).toEqual([]);
    expect(await db.selectFrom('endpoints').select('id').where('id', '=', computeId).execute()).toEqual([]);
    expect(fs.readdirSync(layout.branchesDir).filter((f) => f.includes(branchId))).toEqual([]);
    expect(fs.readdirSync(layout.walDir).filter((f) => f.includes(branchId))).toEqual([]);
    expect(fs.existsSync(layout.endpointDir(computeId))).toBe(false);
    expect(fs.existsSync(layout.socketDir(computeId))).toBe(false);
    expect(pgrep(`postgres.*${branchId}`)).toEqual([]);
    expect(importPrograms()).toEqual([]);
  }

  beforeAll(async () => {
    const capture = new PassThrough();
    capture.on('data', (d: Buffer) => logs.push(d.toString('utf8')));
    [t, s15, s18] = await Promise.all([
      startTestStack({ LOG_LEVEL: 'debug', LAMPION_STORAGE_DRIVER: 'copy', LAMPION_HOST_HEARTBEAT_SECONDS: '3' }, { logStream: capture }),
      startSourceServer({ major: 15, tls: true, name: 'pg15' }),
      startSourceServer({ major: 18, name: 'pg18' }),
    ]);
    ca = fs.readFileSync(proxyCaFile(t), 'utf8');
    for (const major of [15, 18] as const) {
      const p = await request('POST', '/v1/projects', { name: `imports-${major}`, pg_version: major });
      expect(p.status).toBe(201);
      projects[major] = p.body;
      // Seeds run on new branches, but not on imported ones.
      const seed = await request('POST', `/v1/projects/${p.body.id}/seeds`, { name: 'marker', sql: 'CREATE TABLE seeded_marker ()' });
      expect(seed.status).toBe(201);
    }
    const pw = (s: SourceServer) => s.sql(`CREATE ROLE ${OWNER} LOGIN PASSWORD '${SECRET.replace(/'/g, "''")}'`);
    await Promise.all([pw(s15), pw(s18)]);
    await Promise.all([
      // The 15 source: a shop with pgcrypto (absent from the 18 build), one without, and a big one.
      sourceDb(s15, 'shop', { fixture: true, extensions: ['pgcrypto'], sql: "CREATE TABLE secrets (id int PRIMARY KEY, digest bytea); INSERT INTO secrets SELECT g, digest(g::text, 'sha256') FROM generate_series(1, 100) g" }),
      sourceDb(s15, 'plain', { fixture: true }),
      // About 250 MB of rows: its load into a 0.25 CU compute takes far longer than a cancel does.
      sourceDb(s15, 'big', { sql: 'CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 850000) g' }),
      sourceDb(s18, 'shop', { fixture: true }),
      // pgvector: shipped with 18 here; only a superuser may create it, so the platform does.
      sourceDb(s18, 'vectors', { extensions: ['vector'], sql: "CREATE TABLE items (id int PRIMARY KEY, v vector(3)); INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]')" }),
      // postgres_fdw: only a superuser may create it, and the platform does not (network access).
      sourceDb(s18, 'fdw', { extensions: ['postgres_fdw'] }),
      // A policy for a role the target does not have: the load fails.
      sourceDb(s18, 'policies', { sql: "CREATE TABLE docs (id int, body text); ALTER TABLE docs ENABLE ROW LEVEL SECURITY; INSERT INTO docs VALUES (1, 'x')" }),
    ]);
    await s18.sql('CREATE ROLE reader');
    await s18.sql('CREATE POLICY readers ON docs TO reader USING (true)', 'policies');
  });

  afterAll(async () => {
    await t?.stop();
    await Promise.all([s15?.stop(), s18?.stop()]);
  });

  describe('validate', () => {
    it('reports version, size, tables and extensions of a TLS-only Postgres 15, reached over TLS', async () => {
      const r = await validate(15, dsn(s15, 'shop', 'sslmode=require'));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: true, errors: [] });
      expect(r.body.source.pg_version).toMatch(/^15\.\d+$/);
      expect(r.body.source).toMatchObject({ tables: 7, tls: true });
      expect(r.body.source.size_mb).toBeGreaterThan(5);
      expect(r.body.source.extensions).toEqual(
        expect.arrayContaining([
          { name: 'pgcrypto', version: expect.any(String), available_on_target: true, target_version: expect.any(String), requires_superuser: false },
          expect.objectContaining({ name: 'hstore', available_on_target: true }),
        ]),
      );
    });

    it('on an 18 project the same source misses pgcrypto (the 18 build has no OpenSSL)', async () => {
      const r = await validate(18, dsn(s15, 'shop'));
      expect(r.status).toBe(200);
      expect(r.body.ok).toBe(false);
      expect(r.body.errors).toEqual([{ code: 'missing_extension', message: expect.stringContaining('"pgcrypto"') }]);
      expect(r.body.source.extensions).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'pgcrypto', available_on_target: false, target_version: null })]));
      // Without pgcrypto the same server imports into 18 (an upgrade).
      expect((await validate(18, dsn(s15, 'plain'))).body).toMatchObject({ ok: true, source: { tls: true } });
    });

    it('a Postgres 18 source: fine for an 18 project, an unsupported major for a 15 one', async () => {
      const ok = await validate(18, dsn(s18, 'shop'));
      expect(ok.body).toMatchObject({ ok: true, errors: [], source: { tables: 6, tls: false } });
      expect(ok.body.source.pg_version).toMatch(/^18\.\d+$/);
      const newer = await validate(15, dsn(s18, 'shop'));
      expect(newer.status).toBe(200);
      expect(newer.body.ok).toBe(false);
      expect(newer.body.errors).toEqual([{ code: 'unsupported_major', message: expect.stringMatching(/newer than the project's 15/) }]);
    });

    it.each([
      ['a wrong password', () => dsn(s15, 'shop', 'sslmode=require', WRONG), 15, 'bad_credentials'],
      ['a wrong password (18)', () => dsn(s18, 'shop', undefined, WRONG), 18, 'bad_credentials'],
      ['an unreachable host', () => s18.dsn({ user: OWNER, password: SECRET, database: 'shop', port: 1 }), 18, 'unreachable'],
      ['an unreachable host (15)', () => s15.dsn({ user: OWNER, password: SECRET, database: 'shop', port: 1 }), 15, 'unreachable'],
      ['no TLS to a TLS-only server', () => dsn(s15, 'shop', 'sslmode=disable'), 15, 'tls_required'],
      ['TLS required of a server without it', () => dsn(s18, 'shop', 'sslmode=require'), 18, 'tls_refused'],
      ['verify-full of a self-signed certificate', () => dsn(s15, 'shop', 'sslmode=verify-full'), 15, 'tls_verify_failed'],
      ['a database that does not exist', () => dsn(s18, 'nope'), 18, 'database_not_found'],
      ['an extension only a superuser may create', () => dsn(s18, 'fdw'), 18, 'extension_needs_superuser'],
    ])('%s: 200, ok false, the error named', async (_what, make, major, code) => {
      const r = await validate(major as 15 | 18, make());
      expect(r.status).toBe(200);
      expect(r.body.ok).toBe(false);
      expect(r.body.errors.map((e: any) => e.code)).toEqual([code]);
      expect(r.body.errors[0].message.length).toBeGreaterThan(10);
    });

    it.each([
      ['not a URL', 'host=127.0.0.1 user=x'],
      ['another scheme', 'mysql://u:p@127.0.0.1/db'],
      ['a control character', 'postgresql://u:p@127.0.0.1/db\n'],
      ['a NUL', 'postgresql://u:p\u0000@127.0.0.1/db'],
      ['a percent-encoded NUL', 'postgresql://u:p%00@127.0.0.1/db'],
      ['a unix socket', 'postgresql://u:p@%2Ftmp/db'],
      ['no user', 'postgresql://127.0.0.1/db'],
      ['an unknown parameter', 'postgresql://u:p@127.0.0.1/db?sslcert=/etc/shadow'],
      ['a bad sslmode', 'postgresql://u:p@127.0.0.1/db?sslmode=always'],
    ])('a DSN with %s is 422', async (_what, bad) => {
      for (const url of ['validate', 'start']) {
        const r = await request('POST', `/v1/projects/${projects[18].id}/import/${url}`, { source_dsn: bad, branch_name: 'bad' });
        expect(r.status).toBe(422);
        expect(r.body.error.details.fields[0].field).toBe('body.source_dsn');
      }
    });
  });

  describe('import', () => {
    it.each([
      ['TLS-only Postgres 15 into a 15 project', 15, () => s15, 'shop', 'sslmode=require'],
      ['Postgres 18 into an 18 project', 18, () => s18, 'shop', undefined],
      ['TLS-only Postgres 15 into an 18 project (an upgrade)', 18, () => s15, 'plain', undefined],
    ])('%s: schema and rows exactly, owned by cloud_admin, no seeds', async (_what, major, source, db, params) => {
      const m = major as 15 | 18;
      const s = source();
      const res = await start(m, dsn(s, db, params), `imported-${db}-${s.major}`);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ branch_id: expect.stringMatching(/^br-/), branch_name: `imported-${db}-${s.major}`, compute_id: expect.stringMatching(/^ep-/), status: 'importing', operation_id: expect.stringMatching(/^op-/) });
      expect(res.headers.get('location')).toBe(`/v1/projects/${projects[m].id}/operations/${res.body.operation_id}`);
      const done = await finished(m, res.body.branch_id);
      expect(done).toMatchObject({ status: 'ready', step: 'done', branch_name: res.body.branch_name, compute_id: res.body.compute_id, source: `postgresql://${OWNER}@127.0.0.1:${s.port}/${db}`, error: null, progress: null });
      expect(done.result.bytes).toBeGreaterThan(1_000_000);
      expect(done.result.tls).toBe(s.major === 15);

      const branch = await request('GET', `/v1/projects/${projects[m].id}/branches/${res.body.branch_id}`);
      expect(branch.body).toMatchObject({ status: 'ready', parent_id: null, is_primary: false, pg_version: m, compute_id: res.body.compute_id });
      const c = await branchClient(m, res.body.compute_id);
      try {
        expect((await c.query('SHOW server_version_num')).rows[0].server_version_num.slice(0, 2)).toBe(String(m));
        expect(await databaseSignature(c)).toEqual(await sourceSignature(s, db));
        expect(await notOwnedBy(c, 'cloud_admin')).toEqual([]);
        // The project's seed did not run here.
        expect((await c.query("SELECT to_regclass('public.seeded_marker') AS r")).rows[0].r).toBeNull();
        // The user owns what was imported: they can change it.
        await c.query('ALTER TABLE users ADD COLUMN imported boolean; DROP VIEW app.big_orders');
      } finally {
        await c.end();
      }
      // And psql, like a user, through the proxy.
      const ep = await request('GET', `/v1/projects/${projects[m].id}/endpoints/${res.body.compute_id}`);
      const p = await psql(ep.body.connection_string, 'SELECT count(*) FROM app.orders');
      expect(p.stdout.trim()).toBe('30000');
    });

    it('an extension only a superuser may create, but the platform does (vector): made before the load, its data loaded', async () => {
      const check = await validate(18, dsn(s18, 'vectors'));
      expect(check.body).toMatchObject({ ok: true, errors: [] });
      expect(check.body.source.extensions).toContainEqual(expect.objectContaining({ name: 'vector', available_on_target: true, requires_superuser: false }));
      const res = await start(18, dsn(s18, 'vectors'), 'imported-vectors');
      const done = await finished(18, res.body.branch_id);
      expect(done).toMatchObject({ status: 'ready', error: null });
      const c = await branchClient(18, res.body.compute_id);
      try {
        expect((await c.query("SELECT id, v <-> '[1,2,3]' AS d FROM items ORDER BY id")).rows).toEqual([
          { id: 1, d: 0 },
          { id: 2, d: Math.sqrt(27) },
        ]);
        expect((await c.query("SELECT pg_get_userbyid(extowner) AS owner FROM pg_extension WHERE extname = 'vector'")).rows).toEqual([{ owner: 'lampion_system' }]);
      } finally {
        await c.end();
      }
    });

    it('a source that cannot be imported fails at its check, before anything is made', async () => {
      const res = await start(18, dsn(s15, 'shop'), 'needs-pgcrypto');
      expect(res.status).toBe(202);
      const done = await finished(18, res.body.branch_id);
      expect(done).toMatchObject({ status: 'failed', step: 'check_source', error: { type: 'ImportSourceInvalid' } });
      expect(done.error.message).toMatch(/pgcrypto/);
      await expectNothingOf(res.body.branch_id, res.body.compute_id);
    });

    it('a load that fails (a policy for a role the target lacks) removes the branch, naming the error', async () => {
      const res = await start(18, dsn(s18, 'policies'), 'policies');
      const done = await finished(18, res.body.branch_id);
      expect(done).toMatchObject({ status: 'failed', step: 'import', error: { type: 'ImportFailed' } });
      expect(done.error.message).toMatch(/role "reader" does not exist/);
      await expectNothingOf(res.body.branch_id, res.body.compute_id);
    });

    it('a name already taken is 409', async () => {
      const r = await start(18, dsn(s18, 'shop'), 'main');
      expect(r.status).toBe(409);
    });
  });

  describe('with a fault injected', () => {
    const setFaults = (...specs: string[]) => {
      const f = t.stack.config.faultInjection;
      f.splice(0, f.length, ...specs);
    };
    afterEach(() => setFaults());

    it.each([
      ['loadSourceDump', 'import'],
      ['loadSourceDump:after', 'import'],
      ['markBranchReady', 'finalize'],
    ])('%s: the import fails at %s and leaves nothing', async (fault, step) => {
      setFaults(fault);
      const res = await start(18, dsn(s18, 'shop'), `fault-${fault.replace(/:/g, '-')}`);
      const done = await finished(18, res.body.branch_id);
      expect(done).toMatchObject({ status: 'failed', step, error: { type: 'InjectedFault' } });
      await expectNothingOf(res.body.branch_id, res.body.compute_id);
    });
  });

  describe.each([15, 18] as const)('cancelled mid-import into a %s project', (major) => {
    it('stops pg_dump and psql and leaves no branch, data dir, endpoint files or process', async () => {
      const res = await start(major, dsn(s15, 'big', 'sslmode=require'), `big-${major}`);
      expect(res.status).toBe(202);
      const { branch_id: branchId, compute_id: computeId } = res.body;
      // Mid-import: bytes went through the pipe, and both programs run.
      const seen = await until('the load to be under way', async () => {
        const r = await status(major, branchId);
        if (r.body.status !== 'importing') throw new Error(`the import ended before it could be cancelled: ${JSON.stringify(r.body)}`);
        const programs = importPrograms();
        return r.body.step === 'import' && r.body.progress.bytes > 0 && programs.some((p) => p.includes('pg_dump')) && programs.some((p) => p.includes('psql')) ? r.body : undefined;
      });
      expect(seen.progress.current_object).toMatch(/big/);
      // The password is in pg_dump's environment only, never in its command line.
      const running = importPrograms().join('\n');
      expect(running).toContain('pg_dump');
      expect(running).not.toContain(SECRET);
      expect(running).not.toContain(encodeURIComponent(SECRET));

      const cancel = await request('POST', `/v1/projects/${projects[major].id}/import/${branchId}/cancel`);
      expect(cancel.status).toBe(202);
      const done = await finished(major, branchId);
      // A cancel reaches a host activity with its next heartbeat (throttled by the SDK to most of
      // the heartbeat timeout); a load that finishes first is undone from the step after it.
      expect(done).toMatchObject({ status: 'cancelled', error: { type: 'Cancelled' } });
      expect(['import', 'finalize']).toContain(done.step);
      await expectNothingOf(branchId, computeId);
      expect(fs.existsSync(`${t.stack.engine.layout.branchDataDir(branchId)}.importing`)).toBe(false);
      // The run ends as cancelled (just after its operation row says so).
      await expect(t.stack.temporal.workflow.getHandle(`branch/${branchId}`).result()).rejects.toThrow();
      expect((await t.stack.temporal.workflow.getHandle(`branch/${branchId}`).describe()).status.name).toBe('CANCELLED');
      expect((await request('POST', `/v1/projects/${projects[major].id}/import/${branchId}/cancel`)).status).toBe(409);
    });
  });

  it('the source password is in no log, catalog row, workflow history or answer', async () => {
    const forms = [SECRET, encodeURIComponent(SECRET), WRONG, encodeURIComponent(WRONG)];
    const search = (what: string, text: string, expectAlso: string) => {
      // The search looks at the real thing: what it searched holds what an import writes there.
      expect({ what, found: text.includes(expectAlso) }).toEqual({ what, found: true });
      for (const f of forms) expect({ what, leaked: text.includes(f) }).toEqual({ what, leaked: false });
    };
    // 1. Every log line of the stack (debug level: workers, activities, API, proxy).
    search('logs', logs.join(''), 'loadSourceDump');
    // 2. The catalog, whole.
    const pgDump = path.join(testBinDirs().sort((a, b) => b.major - a.major)[0].binDir, 'pg_dump');
    const catalog = execFileSync(pgDump, ['--no-owner', t.env.DATABASE_URL], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    search('catalog', catalog, `postgresql://${OWNER}@127.0.0.1:${s15.port}/shop`);
    // 3. Temporal's history of every import and validation of both projects, payloads decoded.
    const ids: string[] = [];
    for (const major of [15, 18] as const) {
      for await (const w of t.stack.temporal.workflow.list({ query: `LampionProjectId = "${projects[major].id}"` })) ids.push(w.workflowId);
    }
    expect(ids.filter((id) => id.startsWith('import-validate/')).length).toBeGreaterThan(10);
    expect(ids.filter((id) => id.startsWith('branch/')).length).toBeGreaterThan(5);
    const histories: string[] = [];
    for (const id of ids) {
      const h = await t.stack.temporal.workflow.getHandle(id).fetchHistory();
      // Payloads come base64-encoded (protobuf JSON): their decoded text is what is searched.
      histories.push(JSON.stringify(h, (k, v) => (k === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v)));
    }
    search('history', histories.join('\n'), 'sourceSealed');
    // 4. Every answer of the API, errors included.
    search('answers', answers.join('\n'), 'password authentication failed');
  });
});
