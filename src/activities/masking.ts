import { Client } from 'pg';
import { ANALYST_ROLE, columnKey, MASKED_SCHEMA, maskingSetupSql, maskingTeardownSql, parseMaskingFunction, type MaskedTable, type MaskRule } from '../domain/masking';
import { SYSTEM_ROLE, USER_ROLE } from '../domain/roles';

export interface MaskingRuleInput {
  schema: string;
  table: string;
  column: string;
  maskingFunction: string;
}

export interface MaskingApplied {
  knownColumns: string[];
  revokedSchemas: string[];
  revokedDatabases: string[];
}

const PLATFORM_SCHEMAS = ['pg_catalog', 'information_schema', 'anon', MASKED_SCHEMA];

/**
 * Makes (or remakes, after a rule changed) the analyst's masked view of one database, in one
 * transaction as the platform's role. `knownColumns` null means "enabling now": every column
 * there is now is known. Returns what it took from PUBLIC, for the teardown to give back.
 */
export async function applyMasking(c: Client, i: { database: string; rules: MaskingRuleInput[]; knownColumns: string[] | null; analystPassword: string; previous?: MaskingApplied }): Promise<MaskingApplied> {
  const cols = await c.query<{ schema: string; table: string; column: string; type: string }>(
    `SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
        AND n.nspname <> ALL($1) AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
      ORDER BY n.nspname, c.relname, a.attnum`,
    [PLATFORM_SCHEMAS],
  );
  const tables = new Map<string, MaskedTable>();
  for (const r of cols.rows) {
    const k = `${r.schema}.${r.table}`;
    if (!tables.has(k)) tables.set(k, { schema: r.schema, table: r.table, columns: [] });
    tables.get(k)!.columns.push({ name: r.column, type: r.type });
  }
  const known = new Set(i.knownColumns ?? cols.rows.map((r) => columnKey(r.schema, r.table, r.column)));
  const rules: MaskRule[] = [];
  for (const r of i.rules) {
    const p = await parseMaskingFunction(r.maskingFunction);
    // Rules are checked when made; one that no longer parses masks as NULL rather than leak.
    rules.push({ schema: r.schema, table: r.table, column: r.column, masking: p.ok ? p.masking : { name: 'null', args: [] } });
  }
  // Schemas and databases PUBLIC can use now: taken away, and given back at teardown.
  const schemas = await c.query<{ name: string; public_usage: boolean }>(
    `SELECT nspname AS name, EXISTS (SELECT 1 FROM aclexplode(coalesce(nspacl, acldefault('n', nspowner))) x WHERE x.grantee = 0 AND x.privilege_type = 'USAGE') AS public_usage
       FROM pg_namespace WHERE nspname <> ALL($1) AND nspname NOT LIKE 'pg\\_%'`,
    [PLATFORM_SCHEMAS],
  );
  const dbs = await c.query<{ name: string; public_connect: boolean }>(
    `SELECT datname AS name, EXISTS (SELECT 1 FROM aclexplode(coalesce(datacl, acldefault('d', datdba))) x WHERE x.grantee = 0 AND x.privilege_type = 'CONNECT') AS public_connect
       FROM pg_database WHERE datname <> current_database() AND datallowconn AND NOT datistemplate`,
  );
  const roles = await c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname <> ALL($1) AND rolname NOT LIKE 'pg\\_%'`, [[ANALYST_ROLE, SYSTEM_ROLE]]);
  const analystExists = (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [ANALYST_ROLE])).rowCount === 1;
  const revokedSchemas = [...new Set([...(i.previous?.revokedSchemas ?? []), ...schemas.rows.filter((s) => s.public_usage).map((s) => s.name)])];
  const revokedDatabases = [...new Set([...(i.previous?.revokedDatabases ?? []), ...dbs.rows.filter((d) => d.public_connect).map((d) => d.name)])];
  const sql = maskingSetupSql({
    tables: [...tables.values()],
    rules,
    knownColumns: known,
    // Only what PUBLIC could use is taken from it and given to the other roles by name: a schema
    // or database that was private stays exactly as private.
    userSchemas: revokedSchemas,
    otherDatabases: revokedDatabases,
    otherRoles: roles.rows.map((r) => r.rolname),
    userRole: USER_ROLE,
    analystPassword: i.analystPassword,
    analystExists,
  });
  await runAll(c, sql);
  return { knownColumns: [...known], revokedSchemas, revokedDatabases };
}

/** Masking removed from the database: its schemas and role gone, PUBLIC's access given back. */
export async function removeMasking(c: Client, applied: Pick<MaskingApplied, 'revokedSchemas' | 'revokedDatabases'>): Promise<void> {
  const analystExists = (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [ANALYST_ROLE])).rowCount === 1;
  await runAll(c, maskingTeardownSql({ ...applied, analystExists }));
}

/** Statements in one transaction: all or none. */
async function runAll(c: Client, statements: string[]): Promise<void> {
  await c.query('BEGIN');
  try {
    for (const s of statements) await c.query(s);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
