import { anonSchemaSql, maskExpression, maskingSetupSql, maskingTeardownSql, maskingText, MASKING_FUNCTIONS, parseMaskingFunction } from '../src/domain/masking';
import { statementTrees } from '../src/domain/sql';

describe('parseMaskingFunction', () => {
  it('accepts every allowlisted function as the list writes it, and gives it back the same', async () => {
    for (const f of MASKING_FUNCTIONS) {
      const r = await parseMaskingFunction(f.function);
      expect(r).toMatchObject({ ok: true });
      if (r.ok) expect(maskingText(r.masking)).toBe(f.function);
    }
    expect(await parseMaskingFunction("anon.partial({COL}, 0, '', 3)")).toEqual({ ok: true, masking: { name: 'partial', args: [null, 0, '', 3] } });
    expect(await parseMaskingFunction('anon.random_int_between(-5, 5)')).toEqual({ ok: true, masking: { name: 'random_int_between', args: [-5, 5] } });
  });

  it.each([
    'anon.fake_email(); DROP TABLE users',
    'anon.fake_email() ; SELECT 1',
    'anon.fake_email() FROM users',
    'anon.fake_email() AS x',
    'public.fake_email()',
    'fake_email()',
    'anon.fake_email(1)',
    'anon.hash(email)',
    'anon.hash({COL} || (SELECT password FROM users LIMIT 1))',
    'anon.hash((SELECT 1))',
    "anon.partial({COL}, 2, '***')",
    "anon.partial({COL}, '2', '***', 2)",
    "anon.partial({COL}, 2, upper('x'), 2)",
    "anon.partial({COL}, -1, '*', 2)",
    "anon.random_date_between('2020-01-01', now())",
    "anon.random_date_between('2021-01-01', '2020-01-01')",
    'anon.random_int_between(10, 1)',
    "anon.constant('a' || 'b')",
    'anon.pg_read_file()',
    'anon.seed({COL})',
    'pg_sleep(10)',
    '',
    'anon.fake_email()\u0000',
    'anon.fake_email() /*',
    '__lampion_masked_column__',
  ])('refuses %j', async (text) => {
    const r = await parseMaskingFunction(text);
    expect(r.ok).toBe(false);
  });
});

describe('maskExpression', () => {
  it('quotes the column and the constants, and casts back to the column type', async () => {
    const p = await parseMaskingFunction("anon.partial({COL}, 1, 'x''); DROP TABLE t; --', 1)");
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    const e = maskExpression(p.masking, 'we"ird', 'text');
    expect(e).toBe(`(anon.partial("we""ird"::text, 1, 'x''); DROP TABLE t; --', 1))::text`);
    // One expression, nothing after it.
    expect(await statementTrees(`SELECT ${e} FROM t`)).toHaveLength(1);
    expect(maskExpression({ name: 'fake_email', args: [] }, 'email', 'character varying(100)')).toBe('(CASE WHEN "email" IS NULL THEN NULL ELSE anon.fake_email("email"::text) END)::character varying(100)');
    expect(maskExpression({ name: 'null', args: [] }, 'ssn', 'text')).toBe('NULL::text');
    expect(() => maskExpression({ name: 'pg_read_file', args: [] }, 'x', 'text')).toThrow();
  });
});

describe('anonSchemaSql', () => {
  it('parses, and pins every function’s search_path', async () => {
    const sql = anonSchemaSql();
    for (const s of sql) expect(await statementTrees(s)).toHaveLength(1);
    expect(sql.filter((s) => s.startsWith('CREATE OR REPLACE FUNCTION')).every((s) => s.includes('SET search_path = pg_catalog'))).toBe(true);
  });
});

describe('maskingSetupSql and maskingTeardownSql', () => {
  const hostile = 'x"; DROP TABLE users; --';
  const sql = () =>
    maskingSetupSql({
      tables: [
        { schema: 'public', table: hostile, columns: [{ name: 'email', type: 'text' }, { name: hostile, type: 'integer' }, { name: 'added_later', type: 'text' }] },
        { schema: 'sales', table: 'orders', columns: [{ name: 'id', type: 'integer' }] },
      ],
      rules: [{ schema: 'public', table: hostile, column: 'email', masking: { name: 'fake_email', args: [] } }],
      knownColumns: new Set([`public.${hostile}.email`, `public.${hostile}.${hostile}`, 'sales.orders.id']),
      userSchemas: ['public', 'sales'],
      otherDatabases: [hostile],
      otherRoles: ['cloud_admin', hostile],
      userRole: 'cloud_admin',
      analystPassword: "p'w",
      analystExists: false,
    });

  it('quotes every name and the password, and makes exactly one statement of each entry', async () => {
    const out = sql();
    for (const s of out) expect(await statementTrees(s)).toHaveLength(1);
    const text = out.join('\n');
    expect(text).toContain(`CREATE ROLE "lampion_analyst" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD 'p''w'`);
    expect(text).toContain(`REVOKE CONNECT ON DATABASE "x""; DROP TABLE users; --" FROM PUBLIC`);
    expect(text).toContain(`GRANT USAGE ON SCHEMA "public" TO "cloud_admin", "x""; DROP TABLE users; --"`);
  });

  it('masks ruled columns, shows known ones, and NULLs the rest; public tables keep their name', () => {
    const view = sql().find((s) => s.startsWith('CREATE VIEW "lampion_masked"."x'))!;
    expect(view).toBe(
      `CREATE VIEW "lampion_masked"."x""; DROP TABLE users; --" WITH (security_barrier) AS SELECT (CASE WHEN "email" IS NULL THEN NULL ELSE anon.fake_email("email"::text) END)::text AS "email", "x""; DROP TABLE users; --" AS "x""; DROP TABLE users; --", NULL::text AS "added_later" FROM "public"."x""; DROP TABLE users; --"`,
    );
    expect(sql()).toContain('CREATE VIEW "lampion_masked"."sales.orders" WITH (security_barrier) AS SELECT "id" AS "id" FROM "sales"."orders"');
  });

  it('tears down what it made and gives back only what it took', () => {
    expect(maskingTeardownSql({ revokedSchemas: ['public'], revokedDatabases: [], analystExists: true })).toEqual([
      'DROP SCHEMA IF EXISTS "lampion_masked" CASCADE',
      'DROP SCHEMA IF EXISTS anon CASCADE',
      'GRANT USAGE ON SCHEMA "public" TO PUBLIC',
      'DROP OWNED BY "lampion_analyst"',
      'DROP ROLE "lampion_analyst"',
    ]);
  });
});
