import { parseTree } from '../sql';
import { quoteIdent, quoteLiteral } from './identifiers';
import type { Statement } from './statement';

/**
 * Tables and columns: CREATE / DROP / ALTER built from checked parts. A column type is whatever
 * the Postgres grammar reads as exactly one type name (and nothing more); a default is a constant,
 * a bare word (taken as a string), or an expression of constants and allowlisted functions.
 */

export type Checked = { ok: true; sql: string } | { ok: false; message: string };

/** A type as the grammar reads it in a column definition: one TypeName, no constraint, no collation. */
export async function checkColumnType(type: string): Promise<Checked> {
  const t = type.trim();
  if (!t || t.length > 200) return { ok: false, message: 'type must be 1 to 200 characters' };
  if (/[;]|--|\/\*/.test(t)) return { ok: false, message: `not a type: ${JSON.stringify(type)}` };
  const tree = (await parseTree(`CREATE TABLE lampion_check (c ${t})`)) as any[] | undefined;
  const stmt = tree?.length === 1 ? tree[0]?.CreateStmt : undefined;
  const cols = stmt?.tableElts ?? [];
  const def = cols.length === 1 ? cols[0]?.ColumnDef : undefined;
  if (!def || def.colname !== 'c' || !def.typeName || def.constraints?.length || def.collClause || def.compression || def.storage_name) {
    return { ok: false, message: `not a type: ${JSON.stringify(type)}` };
  }
  return { ok: true, sql: t };
}

/** Functions a default may call (by their last name part, any schema qualification refused). */
const DEFAULT_FUNCTIONS = new Set(['now', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday', 'random', 'nextval', 'lower', 'upper', 'make_date', 'make_interval', 'to_jsonb', 'jsonb_build_object', 'jsonb_build_array', 'json_build_object', 'array']);

function allowedExpression(node: unknown, sequenceOk: (name: string) => boolean): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  if (Array.isArray(node)) {
    for (const n of node) {
      const bad = allowedExpression(n, sequenceOk);
      if (bad) return bad;
    }
    return undefined;
  }
  const [kind] = Object.keys(node);
  const body = (node as any)[kind];
  switch (kind) {
    case 'A_Const':
    case 'SQLValueFunction':
      return undefined;
    case 'TypeCast':
      return allowedExpression(body.arg, sequenceOk);
    case 'A_Expr':
      if (body.kind !== undefined && body.kind !== 'AEXPR_OP') return 'only arithmetic and comparison operators';
      return allowedExpression(body.lexpr ?? null, sequenceOk) ?? allowedExpression(body.rexpr ?? null, sequenceOk);
    case 'BoolExpr':
      return allowedExpression(body.args, sequenceOk);
    case 'A_ArrayExpr':
      return allowedExpression(body.elements ?? [], sequenceOk);
    case 'FuncCall': {
      const names: string[] = (body.funcname ?? []).map((n: any) => n?.String?.sval);
      if (names.length !== 1 || !DEFAULT_FUNCTIONS.has(names[0])) return `function ${names.join('.')}() is not allowed in a default`;
      if (body.agg_order || body.agg_filter || body.over || body.agg_star || body.agg_distinct) return 'aggregates and window functions are not allowed in a default';
      if (names[0] === 'nextval') {
        const arg = body.args?.[0];
        const seq = arg?.A_Const?.sval?.sval ?? arg?.TypeCast?.arg?.A_Const?.sval?.sval;
        if (body.args?.length !== 1 || typeof seq !== 'string' || !sequenceOk(seq)) return "nextval() only of the table's own sequences";
        return undefined;
      }
      return allowedExpression(body.args ?? [], sequenceOk);
    }
    default:
      return `${kind} is not allowed in a default (constants and allowlisted functions only)`;
  }
}

/**
 * A default as SQL. A bare word (`pending`) is the string 'pending'; anything else must parse
 * as one expression of constants, casts, operators and allowlisted functions (`now()`,
 * `gen_random_uuid()`, `nextval('<table>_<column>_seq')` of the table's own sequence, …).
 */
export async function checkDefault(expr: string, table: string): Promise<Checked> {
  const e = expr.trim();
  if (!e || e.length > 500) return { ok: false, message: 'default must be 1 to 500 characters' };
  const tree = (await parseTree(`SELECT ${e}`)) as any[] | undefined;
  const sel = tree?.length === 1 ? tree[0]?.SelectStmt : undefined;
  const targets = sel?.targetList ?? [];
  const only = targets.length === 1 && !sel.fromClause && !sel.whereClause && !sel.groupClause && !sel.withClause && !sel.valuesLists ? targets[0]?.ResTarget : undefined;
  if (!only || only.name) return { ok: false, message: `not one expression: ${JSON.stringify(expr)}` };
  const fields = only.val?.ColumnRef?.fields;
  if (fields?.length === 1 && fields[0]?.String?.sval !== undefined && /^[A-Za-z_][A-Za-z0-9_]*$/.test(e)) {
    return { ok: true, sql: quoteLiteral(e) };
  }
  const bad = allowedExpression(only.val, (seq) => seq.startsWith(`${table}_`) && seq.endsWith('_seq'));
  return bad ? { ok: false, message: bad } : { ok: true, sql: e };
}

export interface ColumnSpec {
  name: string;
  /** Checked by checkColumnType. */
  type: string;
  primaryKey?: boolean;
  nullable?: boolean;
  /** Checked by checkDefault. */
  defaultSql?: string;
}

function qualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

function columnSql(c: ColumnSpec, primaryKeyInline: boolean): string {
  let s = `${quoteIdent(c.name)} ${c.type}`;
  if (c.nullable === false) s += ' NOT NULL';
  if (c.defaultSql !== undefined) s += ` DEFAULT ${c.defaultSql}`;
  if (primaryKeyInline && c.primaryKey) s += ' PRIMARY KEY';
  return s;
}

export function createTableSql(schema: string, table: string, columns: ColumnSpec[]): Statement {
  const keys = columns.filter((c) => c.primaryKey);
  const parts = columns.map((c) => columnSql(c, keys.length === 1));
  if (keys.length > 1) parts.push(`PRIMARY KEY (${keys.map((c) => quoteIdent(c.name)).join(', ')})`);
  return { text: `CREATE TABLE ${qualified(schema, table)} (${parts.join(', ')})` };
}

export function dropTableSql(schema: string, table: string): Statement {
  return { text: `DROP TABLE ${qualified(schema, table)}` };
}

export function renameTableSql(schema: string, table: string, newName: string): Statement {
  return { text: `ALTER TABLE ${qualified(schema, table)} RENAME TO ${quoteIdent(newName)}` };
}

export function addColumnSql(schema: string, table: string, c: ColumnSpec): Statement {
  return { text: `ALTER TABLE ${qualified(schema, table)} ADD COLUMN ${columnSql(c, true)}` };
}

export function dropColumnSql(schema: string, table: string, column: string): Statement {
  return { text: `ALTER TABLE ${qualified(schema, table)} DROP COLUMN ${quoteIdent(column)}` };
}

export function renameColumnSql(schema: string, table: string, column: string, newName: string): Statement {
  return { text: `ALTER TABLE ${qualified(schema, table)} RENAME COLUMN ${quoteIdent(column)} TO ${quoteIdent(newName)}` };
}

/** One ALTER TABLE with every change, so they apply together or not at all. `defaultSql: null` drops the default. */
export function alterColumnSql(schema: string, table: string, column: string, change: { type?: string; nullable?: boolean; defaultSql?: string | null }): Statement {
  const col = quoteIdent(column);
  const parts: string[] = [];
  if (change.type !== undefined) parts.push(`ALTER COLUMN ${col} TYPE ${change.type}`);
  if (change.nullable !== undefined) parts.push(`ALTER COLUMN ${col} ${change.nullable ? 'DROP' : 'SET'} NOT NULL`);
  if (change.defaultSql === null) parts.push(`ALTER COLUMN ${col} DROP DEFAULT`);
  else if (change.defaultSql !== undefined) parts.push(`ALTER COLUMN ${col} SET DEFAULT ${change.defaultSql}`);
  return { text: `ALTER TABLE ${qualified(schema, table)} ${parts.join(', ')}` };
}

/** The columns of a table, for answers. */
export function tableColumnsSql(schema: string, table: string): Statement {
  return {
    text: `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    values: [schema, table],
  };
}
