import { createDatabaseSql, dropDatabaseSql } from '../src/domain/pgsql/databases';
import { alterRolePasswordSql, createRoleSql, dropRoleSql, grantRoleToAdminSql, isManagedRole, scramVerifier } from '../src/domain/pgsql/roles';
import { grantSql, revokeSql } from '../src/domain/pgsql/permissions';
import { addColumnSql, alterColumnSql, createTableSql, dropColumnSql, dropTableSql, renameColumnSql, renameTableSql } from '../src/domain/pgsql/tables';
import { createExtensionSql, dropExtensionSql, PLATFORM_EXTENSIONS } from '../src/domain/pgsql/extensions';
import { slowQueriesSql } from '../src/domain/pgsql/introspection';
import { scriptStatements } from '../src/domain/sql';

const HOSTILE = 'x"; DROP TABLE users; --';
const Q = '"x""; DROP TABLE users; --"';

/** Every builder's text parses as exactly one statement: nothing a name holds can add another. */
async function oneStatement(text: string) {
  const r = await scriptStatements(text);
  if (!r.ok) throw new Error(`${text}: ${r.message}`);
  expect(r.statements).toHaveLength(1);
}

describe('SQL builders quote every name', () => {
  it.each([
    [createDatabaseSql(HOSTILE).text, `CREATE DATABASE ${Q}`],
    [dropDatabaseSql(HOSTILE).text, `DROP DATABASE ${Q}`],
    [dropRoleSql(HOSTILE).text, `DROP ROLE ${Q}`],
    [grantRoleToAdminSql(HOSTILE, 'cloud_admin', 18).text, `GRANT ${Q} TO "cloud_admin" WITH INHERIT FALSE, SET TRUE`],
    [grantRoleToAdminSql(HOSTILE, 'cloud_admin', 15).text, `GRANT ${Q} TO "cloud_admin"`],
    [grantSql({ schema: HOSTILE, table: HOSTILE, role: HOSTILE, privileges: ['SELECT', 'INSERT', 'SELECT'] }).text, `GRANT SELECT, INSERT ON TABLE ${Q}.${Q} TO ${Q}`],
    [revokeSql({ schema: 'public', table: 't', role: HOSTILE, privileges: ['ALL', 'SELECT'] }).text, `REVOKE ALL PRIVILEGES ON TABLE "public"."t" FROM ${Q}`],
    [dropTableSql(HOSTILE, HOSTILE).text, `DROP TABLE ${Q}.${Q}`],
    [renameTableSql('public', HOSTILE, HOSTILE).text, `ALTER TABLE "public".${Q} RENAME TO ${Q}`],
    [dropColumnSql('public', 't', HOSTILE).text, `ALTER TABLE "public"."t" DROP COLUMN ${Q}`],
    [renameColumnSql('public', 't', HOSTILE, 'b').text, `ALTER TABLE "public"."t" RENAME COLUMN ${Q} TO "b"`],
    [createExtensionSql(HOSTILE).text, `CREATE EXTENSION IF NOT EXISTS ${Q}`],
    [dropExtensionSql(HOSTILE).text, `DROP EXTENSION ${Q}`],
  ])('%s', async (text, want) => {
    expect(text).toBe(want);
    await oneStatement(text);
  });

  it('tables: primary keys inline or composite, defaults and NOT NULL', async () => {
    const one = createTableSql('public', HOSTILE, [
      { name: 'id', type: 'serial', primaryKey: true },
      { name: HOSTILE, type: 'text', nullable: false, defaultSql: "'a'" },
    ]).text;
    expect(one).toBe(`CREATE TABLE "public".${Q} ("id" serial PRIMARY KEY, ${Q} text NOT NULL DEFAULT 'a')`);
    await oneStatement(one);
    const two = createTableSql('s', 't', [{ name: 'a', type: 'int', primaryKey: true }, { name: 'b', type: 'int', primaryKey: true }]).text;
    expect(two).toBe('CREATE TABLE "s"."t" ("a" int, "b" int, PRIMARY KEY ("a", "b"))');
    expect(addColumnSql('public', 't', { name: HOSTILE, type: 'int', nullable: false }).text).toBe(`ALTER TABLE "public"."t" ADD COLUMN ${Q} int NOT NULL`);
    const alter = alterColumnSql('public', 't', HOSTILE, { type: 'numeric(10,2)', nullable: true, defaultSql: null }).text;
    expect(alter).toBe(`ALTER TABLE "public"."t" ALTER COLUMN ${Q} TYPE numeric(10,2), ALTER COLUMN ${Q} DROP NOT NULL, ALTER COLUMN ${Q} DROP DEFAULT`);
    await oneStatement(alter);
  });

  it('roles: the password is never in the text, only its SCRAM verifier', async () => {
    const pw = "s3cret'; DROP ROLE x; --";
    for (const st of [createRoleSql(HOSTILE, { canLogin: true, password: pw }), alterRolePasswordSql(HOSTILE, pw)]) {
      expect(st.text).not.toContain('s3cret');
      expect(st.text).toMatch(/PASSWORD 'SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+'$/);
      await oneStatement(st.text);
    }
    expect(createRoleSql('r', { canLogin: false }).text).toBe('CREATE ROLE "r" WITH NOLOGIN NOSUPERUSER NOREPLICATION NOBYPASSRLS');
    expect(isManagedRole('pg_monitor', [])).toBe(false);
    expect(isManagedRole('lampion_system', ['lampion_system'])).toBe(false);
    expect(isManagedRole(HOSTILE, ['lampion_system'])).toBe(true);
  });

  it('the SCRAM verifier is the RFC 7677 one (test vector: user, pencil)', () => {
    // RFC 7677 §3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
    const v = scramVerifier('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    expect(v).toBe('SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
  });

  it('platform extensions reach neither files nor network nor raw storage', () => {
    for (const x of ['file_fdw', 'dblink', 'postgres_fdw', 'adminpack', 'pageinspect', 'pg_surgery', 'pg_walinspect']) expect(PLATFORM_EXTENSIONS).not.toContain(x);
  });

  it('slow queries order by an allowlisted column only', () => {
    expect(slowQueriesSql('mean_time', 5, 'lampion_system').text).toContain('ORDER BY mean_exec_time DESC');
    expect(slowQueriesSql('calls', 5, 'lampion_system').values).toEqual([5, 'lampion_system']);
  });
});
