import { startTestStack, TestStack } from './support/stack';

describe('POST …/endpoints/{id}/sql', () => {
  let t: TestStack;
  let project: any;
  const sqlPath = () => `/v1/projects/${project.id}/endpoints/${project.endpoint_id}/sql`;
  const run = (body: Record<string, unknown>) => t.request('POST', sqlPath(), { body });
  const ok = async (query: string, extra: Record<string, unknown> = {}) => {
    const r = await run({ query, ...extra });
    if (r.status !== 200) throw new Error(`${query}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: 'sql' } });
    expect(res.status).toBe(201);
    project = res.body;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('answers one statement with columns, rows and duration, as the user role', async () => {
    const body = await ok("SELECT 1 AS id, 'Alice' AS name, current_user AS who");
    expect(body).toMatchObject({ command: 'SELECT', columns: ['id', 'name', 'who'], column_types: ['integer', 'text', 'name'], rows: [{ id: 1, name: 'Alice', who: 'cloud_admin' }], row_count: 1, truncated: false });
    expect(typeof body.duration).toBe('number');
  });

  it('audits SQL that may change something, and not plain reads', async () => {
    const audited = async () =>
      (await t.stack.db.selectFrom('audit_log').select(['action', 'target', 'outcome']).where('action', '=', 'sql.execute').execute()).length;
    const before = await audited();
    await ok('SELECT 1; SHOW work_mem; EXPLAIN SELECT 1');
    expect(await audited()).toBe(before);
    await ok('CREATE TABLE audited_here (id int)');
    await ok("SELECT set_config('work_mem', '8MB', false)");
    expect(await audited()).toBe(before + 2);
    const last = await t.request('GET', '/v1/orgs/audit-log?limit=1');
    expect(last.body[0]).toMatchObject({ action: 'sql.execute', target: project.endpoint_id, outcome: 'succeeded', status: 200 });
  });

  it('keeps bigint and numeric precision (as text), and times as the server prints them', async () => {
    const body = await ok("SELECT 9223372036854775807::bigint AS big, 12345678901234567890.123456789::numeric AS num, '2026-12-02 10:00:00.123456+00'::timestamptz AT TIME ZONE 'UTC' AS ts, 2.5::float8 AS f");
    expect(body.rows[0]).toEqual({ big: '9223372036854775807', num: '12345678901234567890.123456789', ts: '2026-12-02 10:00:00.123456', f: 2.5 });
  });

  it('binds $1 parameters of a single statement, and refuses them for a script', async () => {
    expect((await ok('SELECT $1::int + 1 AS x, $2::text AS t, $3::jsonb AS j', { params: [41, "it's", { a: [1] }] })).rows[0]).toEqual({ x: 42, t: "it's", j: { a: [1] } });
    const r = await run({ query: 'SELECT $1; SELECT 2', params: [1] });
    expect(r.status).toBe(422);
  });

  it('runs a script in order through a $$ body; the failing third statement is named and the two before it are reported', async () => {
    const script = [
      'CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);',
      "CREATE FUNCTION add_user(n text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN INSERT INTO users(name) VALUES (n); RETURN 1; END; $$;",
      'INSERT INTO no_such_table VALUES (1);',
      'SELECT 1;',
    ].join('\n');
    const r = await run({ query: script });
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: 'undefined_table', message: 'relation "no_such_table" does not exist' });
    const d = r.body.error.details;
    expect(d).toMatchObject({ sqlstate: '42P01', statement: 3, statements_run: 2, statement_text: 'INSERT INTO no_such_table VALUES (1)' });
    expect(d.results.map((x: any) => x.command)).toEqual(['CREATE TABLE', 'CREATE FUNCTION']);
    // The position is in the whole script, pointing at the missing table.
    expect([...script].slice(d.position - 1, d.position - 1 + 'no_such_table'.length).join('')).toBe('no_such_table');
    // The statements before it ran (and committed).
    expect((await ok("SELECT add_user('Bob') AS r")).rows).toEqual([{ r: 1 }]);
    const script2 = await ok('SELECT count(*) AS n FROM users; SELECT name FROM users');
    expect(script2.results.map((x: any) => x.rows)).toEqual([[{ n: '1' }], [{ name: 'Bob' }]]);
  });

  it('a syntax error anywhere means nothing ran, with its position', async () => {
    const r = await run({ query: 'CREATE TABLE never_made (x int);\nSELEC 1;' });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'syntax_error', details: { line: 2, column: 1, statements_run: 0 } });
    expect((await ok("SELECT to_regclass('never_made') AS t")).rows).toEqual([{ t: null }]);
  });

  it('maps SQLSTATEs: duplicate → 409, privilege → 403, timeout → 408, division by zero → 422', async () => {
    const dup = await run({ query: 'CREATE TABLE users (id int)' });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toMatchObject({ code: 'duplicate_table', details: { sqlstate: '42P07' } });
    const priv = await run({ query: "COPY users TO PROGRAM 'id'" });
    expect(priv.status).toBe(403);
    expect(priv.body.error.details.sqlstate).toBe('42501');
    const slow = await run({ query: 'SELECT pg_sleep(10)', timeout_ms: 200 });
    expect(slow.status).toBe(408);
    expect(slow.body.error).toMatchObject({ code: 'statement_timeout', details: { sqlstate: '57014' } });
    const div = await run({ query: 'SELECT 1/0' });
    expect(div.status).toBe(422);
    expect(div.body.error.details.sqlstate).toBe('22012');
  });

  it('caps rows per statement with a truncated flag, without reading the rest', async () => {
    const body = await ok('SELECT g FROM generate_series(1, 1000000) g', { max_rows: 10 });
    expect(body).toMatchObject({ truncated: true, row_count: null });
    expect(body.rows).toHaveLength(10);
    expect(body.rows[9]).toEqual({ g: 10 });
    const exact = await ok('SELECT g FROM generate_series(1, 10) g', { max_rows: 10 });
    expect(exact).toMatchObject({ truncated: false, row_count: 10 });
    expect((await run({ query: 'SELECT 1', max_rows: 10_000_000 })).status).toBe(422);
  });

  it('gives every request a clean session: settings and open transactions do not leak into the next', async () => {
    for (let i = 0; i < 6; i++) await ok("SET search_path = nowhere; BEGIN; INSERT INTO public.users(name) VALUES ('ghost')");
    for (let i = 0; i < 6; i++) {
      const body = await ok("SHOW search_path; SELECT count(*) AS ghosts FROM users WHERE name = 'ghost'");
      expect(body.results[0].rows[0].search_path).toBe('"$user", public');
      expect(body.results[1].rows[0]).toEqual({ ghosts: '0' });
    }
  });

  it('answers psql meta-commands as psql does', async () => {
    const dt = await ok('\\dt');
    expect(dt.command).toBe('\\dt');
    expect(dt.output).toContain('List of tables');
    expect(dt.tables[0].columns).toEqual(['Schema', 'Name', 'Type', 'Owner']);
    expect(dt.tables[0].rows).toContainEqual(['public', 'users', 'table', 'cloud_admin']);
    const d = await ok('\\d users');
    expect(d.output).toContain('Table "public.users"');
    expect(d.tables[0].rows.map((r: string[]) => r[0])).toEqual(['id', 'name']);
    expect(d.output).toContain('"users_pkey" PRIMARY KEY, btree (id)');
    const two = await ok('\\dn\n\\df add_user');
    expect(two.results.map((x: any) => x.command)).toEqual(['\\dn', '\\df add_user']);
    expect(two.results[1].output).toContain('add_user');
    const bad = await run({ query: '\\frobnicate' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('invalid_meta_command');
    expect((await run({ query: '\\dt\nSELECT 1' })).status).toBe(422);
  });

  it('refuses NUL, COPY from or to the client, a bad database name; a missing database is 404', async () => {
    expect((await run({ query: 'SELECT 1\u0000; DROP TABLE users' })).status).toBe(422);
    expect((await run({ query: 'COPY users FROM STDIN' })).status).toBe(422);
    expect((await run({ query: 'COPY users TO STDOUT' })).status).toBe(422);
    expect((await run({ query: 'SELECT 1', database: 'bad\u0001name' })).status).toBe(422);
    const missing = await run({ query: 'SELECT 1', database: 'x"; DROP TABLE users; --' });
    expect(missing.status).toBe(404);
    expect(missing.body.error.details.sqlstate).toBe('3D000');
    expect((await ok('SELECT count(*) AS n FROM users')).rows).toEqual([{ n: '1' }]);
  });

  it('wakes a suspended compute', async () => {
    const s = await t.request('POST', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}/suspend`);
    expect(s.status).toBe(200);
    expect((await ok('SELECT name FROM users')).rows).toEqual([{ name: 'Bob' }]);
    const ep = await t.request('GET', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`);
    expect(ep.body.status).toBe('running');
  });

  it('404 for an endpoint of no project of the caller', async () => {
    const r = await t.request('POST', `/v1/projects/${project.id}/endpoints/ep-nothing-here-000000/sql`, { body: { query: 'SELECT 1' } });
    expect(r.status).toBe(404);
  });
});
