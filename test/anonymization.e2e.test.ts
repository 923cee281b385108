/**
 * Dynamic masking of a branch through the API: rules from the allowlist, enable/disable, and the
 * analyst role reaching masked views only — every known path to the real rows tried with the
 * analyst's own connection string through the proxy (psql, pg_dump), each one a test.
 */
import { execFile } from 'node:child_process';
import { startTestStack, TestStack } from './support/stack';
import { psql, psqlOk } from './support/clients';
import { clientBin } from './support/pg';

jest.setTimeout(300_000);

const EMAIL = 'alice.secret@realmail.test';
const SSN = '123-45-6789';

describe('branch anonymization', () => {
  let t: TestStack;
  let project: any;
  let branch: any;
  let analyst: string;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const anon = (p = '') => path(`/branches/${branch.id}/anonymization${p}`);
  /** psql as the analyst: the output, or the error text. */
  const asAnalyst = async (sql: string) => {
    const r = await psql(analyst, sql);
    return { ok: r.code === 0, out: `${r.stdout}\n${r.stderr}` };
  };
  const expectNoLeak = (text: string) => {
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain(SSN);
    expect(text).not.toContain('Alice Secret');
  };

  beforeAll(async () => {
    // Postgres 15: Debian's psql and pg_dump have TLS for the proxy.
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: 'masking', pg_version: 15 } });
    expect(res.status).toBe(201);
    project = res.body;
    await psqlOk(
      project.connection_string,
      `CREATE TABLE users (id serial PRIMARY KEY, email text, full_name text, ssn text, city text, born date, score int);
       INSERT INTO users (email, full_name, ssn, city, born, score) VALUES ('${EMAIL}', 'Alice Secret', '${SSN}', 'Paris', '1990-04-01', 42), ('bob@realmail.test', 'Bob Private', '987-65-4321', 'Rome', '1985-01-01', 7);
       CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users (id), note text);
       INSERT INTO orders (user_id, note) VALUES (1, 'first');
       CREATE FUNCTION leak() RETURNS SETOF users LANGUAGE sql SECURITY DEFINER AS 'SELECT * FROM users';
       CREATE VIEW raw_users AS SELECT * FROM users;
       SELECT lo_from_bytea(4242, convert_to('${EMAIL}', 'UTF8'));
       ANALYZE users;`,
    );
    const b = await t.request('POST', path('/branches'), { body: { name: 'analytics' } });
    expect(b.status).toBe(201);
    branch = b.body;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists the allowlist, and refuses rules outside it or on columns that do not exist (422)', async () => {
    const fns = await t.request('GET', anon('/functions'));
    expect(fns.status).toBe(200);
    expect(fns.body.map((f: any) => f.function)).toEqual(expect.arrayContaining(['anon.fake_email()', 'anon.hash({COL})', 'anon.fake_iban()', 'NULL']));
    for (const masking_function of ['anon.fake_email(); DROP TABLE users', 'pg_read_file(\'/etc/passwd\')', 'anon.hash(email)', "anon.partial({COL}, 1, upper('x'), 1)"]) {
      const r = await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name: 'email', masking_function } });
      expect(r.status).toBe(422);
    }
    expect((await t.request('POST', anon('/rules'), { body: { table_name: 'nope', column_name: 'email', masking_function: 'anon.fake_email()' } })).status).toBe(422);
    expect((await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name: 'x"; DROP TABLE users; --', masking_function: 'NULL' } })).status).toBe(422);
    expect(await psqlOk(branch.connection_string, 'SELECT count(*) FROM users')).toBe('2');
  });

  it('refuses masking on the primary branch, and enables it on a branch with rules', async () => {
    expect((await t.request('POST', path(`/branches/${project.branch_id}/anonymization/enable`))).status).toBe(409);
    for (const [column_name, masking_function] of [
      ['email', 'anon.fake_email()'],
      ['full_name', 'anon.fake_first_name()'],
      ['ssn', 'anon.hash({COL})'],
      ['born', "anon.random_date_between('1950-01-01', '2000-12-31')"],
    ]) {
      const r = await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name, masking_function } });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ schema_name: 'public', table_name: 'users', column_name, masking_function });
    }
    expect((await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name: 'email', masking_function: 'NULL' } })).status).toBe(409);
    const res = await t.request('POST', anon('/enable'));
    expect(res.status).toBe(200);
    expect(res.body.enabled).toBe(true);
    analyst = res.body.analyst_connection_string;
    expect(analyst).toMatch(/^postgresql:\/\/lampion_analyst:/);
    expect(analyst).toContain(`/${branch.compute_id}.postgres?sslmode=require`);
    const got = await t.request('GET', anon());
    expect(got.body).toMatchObject({ enabled: true, analyst_connection_string: analyst });
    expect(got.body.rules).toHaveLength(4);
  });

  it('shows the analyst masked rows: realistic fakes, stable hashes, untouched columns as they are', async () => {
    const rows = (await psqlOk(analyst, 'SELECT id, email, full_name, ssn, city, score FROM users ORDER BY id')).split('\n').map((l) => l.split('|'));
    expect(rows).toHaveLength(2);
    const [id, email, name, ssn, city, score] = rows[0];
    expect([id, city, score]).toEqual(['1', 'Paris', '42']);
    expect(email).toMatch(/^[a-zé]+\.[a-zé]+\d+@example\.com$/);
    expect(name).toMatch(/^[A-Z]/);
    expect(ssn).toMatch(/^[0-9a-f]{64}$/);
    expect(await psqlOk(analyst, 'SELECT ssn FROM users WHERE id = 1')).toBe(ssn);
    expectNoLeak(rows.flat().join(' '));
    // The branch's owner still sees the real data.
    expect(await psqlOk(branch.connection_string, 'SELECT email FROM users WHERE id = 1')).toBe(EMAIL);
  });

  describe('the analyst cannot reach real rows', () => {
    it.each([
      ['a direct SELECT on the real table', 'SELECT * FROM public.users'],
      ['COPY … TO STDOUT', 'COPY public.users TO STDOUT'],
      ['a cursor', 'BEGIN; DECLARE c CURSOR FOR SELECT * FROM public.users; FETCH ALL FROM c; COMMIT'],
      ['EXPLAIN ANALYZE of the real table', 'EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM public.users'],
      ['a SECURITY DEFINER function that reads it', 'SELECT * FROM public.leak()'],
      ['a view that reads it', 'SELECT * FROM public.raw_users'],
      ['search_path pointed at the real schema', 'SET search_path = public; SELECT * FROM users'],
      ['a large object', 'SELECT convert_from(lo_get(4242), \'UTF8\')'],
      ['pg_stats most-common values', "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'users'"],
      ['pg_statistic', 'SELECT * FROM pg_statistic LIMIT 5'],
      ['another database', '\\c template1'],
    ])('%s', async (_what, sql) => {
      const r = await asAnalyst(sql);
      // The analyst got in and was refused (or saw nothing), not turned away at the door.
      expect(r.out).not.toMatch(/could not connect|authentication failed|connection refused|timeout expired/i);
      expectNoLeak(r.out);
    });

    it('is refused by privilege, not by luck', async () => {
      for (const sql of ['SELECT * FROM public.users', 'COPY public.users TO STDOUT', 'SELECT * FROM public.leak()', 'SELECT * FROM public.raw_users']) {
        const r = await asAnalyst(sql);
        expect(r.ok).toBe(false);
        expect(r.out).toMatch(/permission denied for schema public/);
      }
      expect((await asAnalyst("SELECT convert_from(lo_get(4242), 'UTF8')")).out).toMatch(/permission denied for large object/);
      expect(await psqlOk(analyst, "SELECT count(*) FROM pg_stats WHERE tablename = 'users'")).toBe('0');
    });

    it('EXPLAIN of the masked view shows no values', async () => {
      const r = await asAnalyst(`EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM users WHERE email = 'x'`);
      expect(r.ok).toBe(true);
      expectNoLeak(r.out);
    });

    it('a temp function shadowing a masking function changes nothing', async () => {
      const r = await asAnalyst(`CREATE FUNCTION pg_temp.fake_email(v text) RETURNS text LANGUAGE sql AS 'SELECT v'; SET search_path = pg_temp, lampion_masked, anon; SELECT email FROM users`);
      expectNoLeak(r.out);
    });

    it('pg_dump --inserts with the analyst connection string', async () => {
      const out = await new Promise<string>((resolve) =>
        execFile(clientBin('pg_dump', 15), ['--inserts', '-d', analyst], { encoding: 'utf8', env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (_err, stdout, stderr) => resolve(`${stdout}\n${stderr}`)),
      );
      expectNoLeak(out);
    });

    it('writes are refused', async () => {
      const r = await asAnalyst("INSERT INTO lampion_masked.users (email) VALUES ('x')");
      expect(r.ok).toBe(false);
    });

    it('an analyst API key sees the masked branch’s status and its analyst string only, and no unmasked branch', async () => {
      const key = await t.key('analyst');
      const r = await t.request('GET', anon(), { key });
      expect(r.status).toBe(200);
      expect(r.body.analyst_connection_string).toBe(analyst);
      expect(JSON.stringify(r.body)).not.toContain(decodeURIComponent(new URL(branch.connection_string).password));
      expect((await t.request('GET', path(`/branches/${project.branch_id}/anonymization`), { key })).status).toBe(404);
      // Projects and branches: only those with masking on, and nothing that connects.
      const projects = await t.request('GET', '/v1/projects', { key });
      expect(projects.body.map((p: any) => p.id)).toEqual([project.id]);
      const listed = await t.request('GET', path('/branches'), { key });
      expect(listed.status).toBe(200);
      expect(listed.body.map((b: any) => b.id)).toEqual([branch.id]);
      expect(listed.body[0].anonymization_enabled).toBe(true);
      expect((await t.request('GET', path(`/branches/${branch.id}`), { key })).status).toBe(200);
      expect((await t.request('GET', path(`/branches/${project.branch_id}`), { key })).status).toBe(404);
      for (const body of [projects.body, listed.body]) expect(JSON.stringify(body)).not.toContain('postgresql://');
      for (const url of [path(`/endpoints/${branch.compute_id}`), path('/endpoints'), path('/schema'), path('/metrics')]) {
        const res = await t.request('GET', url, { key });
        expect(res.status).toBe(403);
        expect(JSON.stringify(res.body)).not.toContain('postgresql://');
      }
      expect((await t.request('POST', path('/replay'), { key, body: { source_endpoint_id: branch.compute_id, target_endpoint_id: branch.compute_id } })).status).toBe(403);
      expect((await t.request('GET', path(`/endpoints/${branch.compute_id}/dump`), { key })).status).toBe(403);
    });

    it('the SQL API is not the analyst’s', async () => {
      const key = await t.key('analyst');
      const r = await t.request('POST', path(`/endpoints/${branch.compute_id}/sql`), { key, body: { query: 'SELECT * FROM users' } });
      expect(r.status).toBe(403);
      expectNoLeak(JSON.stringify(r.body));
    });
  });

  it('masks a column added after enable as NULL until a rule names it; rules apply at once', async () => {
    await psqlOk(branch.connection_string, "ALTER TABLE users ADD COLUMN iban text; UPDATE users SET iban = 'FR7630006000011234567890189'");
    // The views are made again on the next rule change: the new column appears, as NULL.
    const rule = await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name: 'city', masking_function: 'anon.fake_city()' } });
    expect(rule.status).toBe(201);
    expect(await psqlOk(analyst, 'SELECT coalesce(iban, \'<null>\') FROM users WHERE id = 1')).toBe('<null>');
    expect(await psqlOk(analyst, 'SELECT city FROM users WHERE id = 1')).not.toBe('Paris');
    const iban = await t.request('POST', anon('/rules'), { body: { table_name: 'users', column_name: 'iban', masking_function: 'anon.fake_iban()' } });
    expect(iban.status).toBe(201);
    expect(await psqlOk(analyst, 'SELECT iban FROM users WHERE id = 1')).toMatch(/^DE\d{20}$/);
    // Deleting a rule never shows the column raw.
    expect((await t.request('DELETE', anon(`/rules/${iban.body.id}`))).status).toBe(204);
    expect(await psqlOk(analyst, 'SELECT coalesce(iban, \'<null>\') FROM users WHERE id = 1')).toBe('<null>');
    expect((await t.request('DELETE', anon(`/rules/${iban.body.id}`))).status).toBe(404);
  });

  it('disable removes the role, views and functions, and gives PUBLIC back what it had', async () => {
    const res = await t.request('POST', anon('/disable'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ enabled: false, analyst_connection_string: null });
    const r = await psql(analyst, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect(await psqlOk(branch.connection_string, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('anon', 'lampion_masked')")).toBe('0');
    expect(await psqlOk(branch.connection_string, "SELECT count(*) FROM pg_roles WHERE rolname = 'lampion_analyst'")).toBe('0');
    expect(await psqlOk(branch.connection_string, "SELECT has_schema_privilege('public', 'public', 'USAGE')")).toBe('t');
    // The rules stay, for the next enable.
    expect((await t.request('GET', anon('/rules'))).body).toHaveLength(5);
  });
});
