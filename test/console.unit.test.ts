import { sqlErrorAnswer } from '../src/domain/sqlstate';
import { scriptStatements } from '../src/domain/sql';
import { checkIdentifier, quoteIdent, quoteLiteral } from '../src/domain/pgsql/identifiers';
import { metaCommands } from '../src/api/console';

describe('SQLSTATE → API answer', () => {
  it.each([
    ['42P01', 404, 'undefined_table'],
    ['42710', 409, 'duplicate_object'],
    ['42P07', 409, 'duplicate_table'],
    ['2BP01', 409, 'dependent_objects_still_exist'],
    ['42501', 403, 'insufficient_privilege'],
    ['42601', 422, 'syntax_error'],
    ['57014', 408, 'statement_timeout'],
    ['23505', 409, 'integrity_constraint_violation'],
    ['22012', 422, 'data_exception'],
    ['42P99', 422, 'invalid_sql'],
    ['ZZ999', 422, 'sql_error'],
  ])('%s → %i %s', (state, status, code) => {
    expect(sqlErrorAnswer(state)).toEqual({ status, code });
  });
  it('a missing or malformed code is a plain SQL error', () => {
    expect(sqlErrorAnswer(undefined)).toEqual({ status: 422, code: 'sql_error' });
    expect(sqlErrorAnswer('ECONNREFUSED')).toEqual({ status: 422, code: 'sql_error' });
  });
});

describe('scriptStatements', () => {
  it('splits through dollar quotes, strings and comments, with each statement\'s position in code points', async () => {
    const script = "SELECT 'a;b' AS x; -- c;\n/* d; */ CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n  SELECT 'é😀' ; SELECT 2";
    const r = await scriptStatements(script);
    if (!r.ok) throw new Error(r.message);
    expect(r.statements.map((s) => s.text)).toEqual(["SELECT 'a;b' AS x", 'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$', "SELECT 'é😀'", 'SELECT 2']);
    expect(r.statements.map((s) => s.kind)).toEqual(['SelectStmt', 'CreateFunctionStmt', 'SelectStmt', 'SelectStmt']);
    const cps = [...script];
    for (const s of r.statements) expect(cps.slice(s.position - 1, s.position - 1 + [...s.text].length).join('')).toBe(s.text);
  });

  it.each([
    ['SELECT * FROM t', true],
    ['SHOW search_path', true],
    ['EXPLAIN SELECT 1', true],
    ['VALUES (1)', true],
    ['EXPLAIN ANALYZE SELECT 1', false],
    ['SELECT * INTO t2 FROM t', false],
    ['SELECT * FROM t FOR UPDATE', false],
    ["SELECT set_config('search_path', 'x', false)", false],
    ['SELECT pg_advisory_lock(1)', false],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', false],
    ['SET search_path = x', false],
    ['BEGIN', false],
    ['INSERT INTO t VALUES (1)', false],
    ['PREPARE p AS SELECT 1', false],
  ])('%s leaves no session state: %s', async (sql, clean) => {
    const r = await scriptStatements(sql);
    if (!r.ok) throw new Error(r.message);
    expect(r.statements[0].leavesNoState).toBe(clean);
  });

  it('refuses COPY to or from the client, NUL and syntax errors with positions', async () => {
    expect(await scriptStatements('COPY t TO STDOUT')).toMatchObject({ ok: false, message: expect.stringMatching(/not supported over the SQL API/) });
    expect(await scriptStatements('COPY t FROM STDIN')).toMatchObject({ ok: false });
    expect(await scriptStatements("COPY t TO '/tmp/x'")).toMatchObject({ ok: true });
    expect(await scriptStatements('SELECT 1;\u0000')).toMatchObject({ ok: false, position: 10 });
    expect(await scriptStatements('SELECT 1;\nSELEC 2')).toMatchObject({ ok: false, line: 2, column: 1 });
    expect(await scriptStatements('SELECT 1; \\dt')).toMatchObject({ ok: false, message: expect.stringContaining(`meta-command "\\dt" inside SQL`) });
    expect(await scriptStatements('  -- nothing')).toMatchObject({ ok: false });
  });
});

describe('meta-commands', () => {
  it('a request of backslash lines only', () => {
    expect(metaCommands('\\dt')).toEqual(['\\dt']);
    expect(metaCommands('  \\d users\n\n\\l\n')).toEqual(['\\d users', '\\l']);
    expect(metaCommands('SELECT 1')).toBeUndefined();
    expect(() => metaCommands('\\dt\nSELECT 1')).toThrow(/line 2 is not a meta-command/);
  });
});

describe('identifiers and literals', () => {
  const HOSTILE = 'x"; DROP TABLE users; --';
  it('quotes an identifier as exactly itself', () => {
    expect(quoteIdent(HOSTILE)).toBe('"x""; DROP TABLE users; --"');
    expect(quoteIdent('Users')).toBe('"Users"');
  });
  it("quotes a literal with '' and keeps backslashes literal; refuses NUL", () => {
    expect(quoteLiteral("it's \\n")).toBe("'it''s \\n'");
    expect(() => quoteLiteral('a\u0000b')).toThrow();
  });
  it('checks names: empty, control characters, over 63 bytes', () => {
    expect(checkIdentifier(HOSTILE, 'table')).toBeUndefined();
    expect(checkIdentifier('', 'table')).toMatch(/empty/);
    expect(checkIdentifier('a\u0007b', 'table')).toMatch(/control/);
    expect(checkIdentifier('é'.repeat(32), 'table')).toMatch(/63 bytes/);
  });
});
