import { quoteIdent } from './identifiers';
import type { Statement } from './statement';

/** The table privileges the API grants and revokes, and nothing else. */
export const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'ALL'] as const;
export type TablePrivilege = (typeof TABLE_PRIVILEGES)[number];

/** Schemas that are Postgres's own. */
const SYSTEM_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'`;
/** Relations an extension made (pg_stat_statements' views in public): the extension's, not the user's. */
const NOT_EXTENSION_MEMBER = `NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.deptype = 'e')`;

/** Grants on tables, views and sequences of user schemas, to roles other than the owner. */
export function listGrantsSql(): Statement {
  return {
    text: `SELECT n.nspname AS schema, c.relname AS table,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS role,
                  array_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${SYSTEM_SCHEMAS} AND ${NOT_EXTENSION_MEMBER} AND a.grantee <> c.relowner
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  };
}

/** Tables (and views) privileges can be granted on. */
export function listGrantableTablesSql(): Statement {
  return {
    text: `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${SYSTEM_SCHEMAS} AND ${NOT_EXTENSION_MEMBER} ORDER BY 1, 2`,
  };
}

function privilegeList(privileges: readonly TablePrivilege[]): string {
  const set = [...new Set(privileges)];
  return set.includes('ALL') ? 'ALL PRIVILEGES' : set.join(', ');
}

export function grantSql(t: { schema: string; table: string; role: string; privileges: readonly TablePrivilege[] }): Statement {
  return { text: `GRANT ${privilegeList(t.privileges)} ON TABLE ${quoteIdent(t.schema)}.${quoteIdent(t.table)} TO ${quoteIdent(t.role)}` };
}

export function revokeSql(t: { schema: string; table: string; role: string; privileges: readonly TablePrivilege[] }): Statement {
  return { text: `REVOKE ${privilegeList(t.privileges)} ON TABLE ${quoteIdent(t.schema)}.${quoteIdent(t.table)} FROM ${quoteIdent(t.role)}` };
}
