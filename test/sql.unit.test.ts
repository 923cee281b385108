import { SqlScriptError, splitStatements, validateSql } from '../src/domain/sql';

/** Positions the parser reports below were checked against a real Postgres server's error cursor. */
async function expectError(sql: string, message: string | RegExp, line: number, column: number, position: number) {
  const r = await validateSql(sql);
  expect(r.ok).toBe(false);
  if (r.ok) return;
  if (typeof message === 'string') expect(r.message).toBe(message);
  else expect(r.message).toMatch(message);
  expect({ line: r.line, column: r.column, position: r.position }).toEqual({ line, column, position });
}

const FUNCTION_BODY = `
CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
  NEW.updated_at := now();  -- a semicolon; inside the body
  RETURN NEW;
END;
$body$;
`;

describe('validateSql: valid scripts', () => {
  it.each([
    ['DDL', 'CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz DEFAULT now())', 1],
    ['DML', "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');\nUPDATE users SET email = lower(email);\nDELETE FROM users WHERE id > 10;", 3],
    ['dollar-quoted function body with semicolons', FUNCTION_BODY, 1],
    ['DO block', "DO $$ BEGIN RAISE NOTICE 'x;y'; END $$;", 1],
    ['CREATE EXTENSION', 'CREATE EXTENSION IF NOT EXISTS pgcrypto;\nCREATE EXTENSION "uuid-ossp" WITH SCHEMA public;', 2],
    ['line and nested block comments', '-- header\n/* outer /* nested */ still comment */\nSELECT 1; -- trailing\n', 1],
    ['transaction control', 'BEGIN;\nCREATE SCHEMA app;\nCOMMIT;', 3],
    ['empty statements between semicolons', 'SELECT 1;;\n;SELECT 2;', 2],
    ['multi-byte text', "INSERT INTO t VALUES ('café 😀');", 1],
    ['backslash at line start inside a string literal', "SELECT 'line one\n\\not a meta-command';", 1],
    ['backslash at line start inside a dollar-quoted body', 'SELECT $q$\n\\copy is just text here\n$q$;', 1],
    ['COPY from a server-side file', "COPY users FROM '/tmp/users.csv' WITH (FORMAT csv);", 1],
    ['PostgreSQL 18 syntax (virtual generated column)', 'CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) VIRTUAL);', 1],
    ['CRLF line endings', 'SELECT 1;\r\nSELECT 2;\r\n', 2],
  ])('%s', async (_name, sql, statements) => {
    await expect(validateSql(sql)).resolves.toEqual({ ok: true, statements });
  });
});

describe('validateSql: rejected scripts', () => {
  it('rejects empty and whitespace-only scripts', async () => {
    await expectError('', 'script is empty', 1, 1, 1);
    await expectError('  \n\t\r\n ', 'script is empty', 1, 1, 1);
  });

  it('rejects scripts that are only comments or semicolons', async () => {
    await expectError('-- nothing here\n/* really */', /no SQL statements/, 1, 1, 1);
    await expectError(';;', /no SQL statements/, 1, 1, 1);
  });

  it("reports the parser's message and position", async () => {
    await expectError('SELEC 1', 'syntax error at or near "SELEC"', 1, 1, 1);
    await expectError('SELECT * FROM users WHERE', 'syntax error at end of input', 1, 26, 26);
    await expectError('SELECT $$ abc', 'unterminated dollar-quoted string at or near "$$ abc"', 1, 8, 8);
    await expectError("SELECT 'abc", 'unterminated quoted string at or near "\'abc"', 1, 8, 8);
    await expectError('SELECT 1 /* open', 'unterminated /* comment at or near "/* open"', 1, 10, 10);
  });

  it('counts lines and columns in multi-line scripts', async () => {
    await expectError('CREATE TABLE t (id int);\nINSERT INTO t VALUES (1;\n', 'syntax error at or near ";"', 2, 24, 49);
    await expectError('SELECT 1;\n\n\tSELEC 2', 'syntax error at or near "SELEC"', 3, 2, 13);
    await expectError("INSERT INTO t VALUES ('café');\r\nSELEC 1", 'syntax error at or near "SELEC"', 2, 1, 33);
  });

  it('counts characters, not bytes or UTF-16 units, after multi-byte characters', async () => {
    // 'é' is 2 bytes in UTF-8, '😀' is 4 bytes and 2 UTF-16 units: each counts as one character.
    await expectError("SELECT 'é' FROM FROM", 'syntax error at or near "FROM"', 1, 17, 17);
    await expectError("SELECT 'é😀' FROM FROM", 'syntax error at or near "FROM"', 1, 18, 18);
    await expectError("SELECT '😀😀', 1 +", 'syntax error at end of input', 1, 17, 17);
    await expectError("INSERT INTO t VALUES ('é');\nINSERT INTO t VALUES ('😀');\nSELECT 'ü' FROM FROM", 'syntax error at or near "FROM"', 3, 17, 73);
    await expectError("-- 😀 commentaire: café\nSELEC 1", 'syntax error at or near "SELEC"', 2, 1, 24);
  });

  describe('psql meta-commands', () => {
    it('rejects a meta-command on the first line', async () => {
      await expectError('\\set ON_ERROR_STOP on\nSELECT 1;', 'psql meta-command "\\set" is not supported in seeds: seeds are plain SQL run by the server, not by psql', 1, 1, 1);
    });
    it('rejects a meta-command after statements, pointing at it', async () => {
      await expectError('CREATE TABLE t (a int);\n\\connect other_db\nSELECT 1;', /^psql meta-command "\\connect" is not supported in seeds/, 2, 1, 25);
      await expectError('SELECT 1;\n   \\i more.sql\n', /^psql meta-command "\\i" is not supported in seeds/, 2, 4, 14);
      await expectError("SELECT 'é';\n\\q", /^psql meta-command "\\q" is not supported in seeds/, 2, 1, 13);
    });
    it('rejects a meta-command that ends a query on the same line', async () => {
      await expectError('SELECT count(*) AS n FROM t \\gset', /^psql meta-command "\\gset" is not supported in seeds/, 1, 29, 29);
    });
    it('leaves other syntax errors alone', async () => {
      await expectError("SELECT U&'\\00zz'", 'invalid Unicode escape', 1, 11, 11);
    });
  });

  describe('COPY ... FROM stdin', () => {
    const message = /^COPY \.\.\. FROM stdin is not supported in seeds/;
    it('rejects pg_dump-style inline COPY data, pointing at the COPY', async () => {
      await expectError('CREATE TABLE t (a int, b text);\nCOPY t (a, b) FROM stdin;\n1\tfoo\n2\tbar\n\\.\n', message, 2, 1, 33);
      await expectError('COPY t FROM stdin;\nalice\t30\nbob;x\t31\n\\.\n', message, 1, 1, 1);
    });
    it('prefers the COPY explanation when a data row starts with \\N', async () => {
      await expectError('COPY t (a, b) FROM stdin;\n\\N\tfoo\n\\.\n', message, 1, 1, 1);
    });
    it('rejects COPY FROM stdin even without data', async () => {
      await expectError('SELECT 1;\nCOPY t FROM STDIN;', message, 2, 1, 11);
    });
    it('does not blame an unrelated earlier COPY', async () => {
      await expectError("COPY t FROM '/tmp/x.csv';\nSELEC 1", 'syntax error at or near "SELEC"', 2, 1, 27);
    });
  });

  it('rejects NUL characters instead of validating only the text before them', async () => {
    await expectError('SELECT 1;\0DROP TABLE users', /NUL character/, 1, 10, 10);
  });

  it('rejects unpaired surrogates', async () => {
    await expectError("SELECT 'é', '\ud800'", /not valid Unicode/, 1, 14, 14);
  });

  it('explains a leading byte order mark', async () => {
    await expectError('\uFEFFSELECT 1', /byte order mark/, 1, 1, 1);
  });
});

describe('splitStatements', () => {
  it('splits on statement boundaries, dropping semicolons and the comments between statements', async () => {
    const sql = '-- users\nCREATE TABLE users (id int);\n\n/* seed */\nINSERT INTO users VALUES (1);   -- first\nSELECT 1';
    await expect(splitStatements(sql)).resolves.toEqual(['CREATE TABLE users (id int)', 'INSERT INTO users VALUES (1)', 'SELECT 1']);
  });

  it('keeps semicolons inside dollar-quoted bodies and string literals', async () => {
    const parts = await splitStatements(`${FUNCTION_BODY}SELECT 'a;b';`);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toMatch(/^CREATE OR REPLACE FUNCTION touch_updated_at\(\)/);
    expect(parts[0]).toContain('NEW.updated_at := now();  -- a semicolon; inside the body');
    expect(parts[0]).toMatch(/\$body\$$/);
    expect(parts[1]).toBe("SELECT 'a;b'");
  });

  it('keeps comments inside a statement', async () => {
    await expect(splitStatements('SELECT 1 -- why\n  , 2;\nSELECT 3 /* end */ ;')).resolves.toEqual(['SELECT 1 -- why\n  , 2', 'SELECT 3 /* end */']);
  });

  it('skips empty statements', async () => {
    await expect(splitStatements(';;SELECT 1;;;SELECT 2;;')).resolves.toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('converts byte offsets to string offsets after multi-byte characters', async () => {
    const sql = "INSERT INTO t VALUES ('é');\nINSERT INTO t VALUES ('😀😀');\n-- ü\nSELECT 'ñ', '日本語'; SELECT 3";
    await expect(splitStatements(sql)).resolves.toEqual([
      "INSERT INTO t VALUES ('é')",
      "INSERT INTO t VALUES ('😀😀')",
      "SELECT 'ñ', '日本語'",
      'SELECT 3',
    ]);
  });

  it('handles CRLF line endings', async () => {
    await expect(splitStatements('SELECT 1;\r\nSELECT 2;\r\n')).resolves.toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('returns nothing for scripts without statements', async () => {
    await expect(splitStatements('')).resolves.toEqual([]);
    await expect(splitStatements(' \n ')).resolves.toEqual([]);
    await expect(splitStatements('-- only a comment')).resolves.toEqual([]);
  });

  it('gives statements that each validate on their own', async () => {
    const sql = `CREATE EXTENSION IF NOT EXISTS pgcrypto;${FUNCTION_BODY}INSERT INTO t VALUES ('ü', $$x;y$$);`;
    const parts = await splitStatements(sql);
    expect(parts).toHaveLength(3);
    for (const p of parts) await expect(validateSql(p)).resolves.toEqual({ ok: true, statements: 1 });
  });

  it('throws SqlScriptError with the validation details on invalid scripts', async () => {
    const err = await splitStatements("SELECT 'é';\nSELEC 1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqlScriptError);
    expect(err).toMatchObject({ line: 2, column: 1, position: 13, message: 'syntax error at or near "SELEC" (line 2, column 1)' });
    await expect(splitStatements('\\c db')).rejects.toThrow(/meta-command "\\c"/);
  });
});
