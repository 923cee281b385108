import { statementTrees } from './sql';
import { quoteIdent, quoteLiteral } from './pgsql/identifiers';

/**
 * Dynamic masking's vocabulary: the allowlist of masking functions a rule may name, the parser
 * that accepts a rule's `masking_function` text only when it is exactly one call of one of them
 * with constant arguments, and the SQL of the functions themselves (schema `anon`, installed on
 * a branch when masking is enabled). postgresql_anonymizer is not packaged for these builds;
 * this is the same model, built from SQL. Pure: text in, text out.
 */

/** An argument a masking function takes: the masked column itself, or a constant. */
export type MaskingArg = 'col' | 'int' | 'text' | 'date';

export interface MaskingFunction {
  /** As written in a rule: `anon.partial({COL}, 2, '***', 2)`. */
  function: string;
  name: string;
  args: MaskingArg[];
  description: string;
}

export const MASKING_FUNCTIONS: readonly MaskingFunction[] = [
  { function: 'anon.fake_email()', name: 'fake_email', args: [], description: 'Fake email address (the same for the same value)' },
  { function: 'anon.fake_first_name()', name: 'fake_first_name', args: [], description: 'Fake first name' },
  { function: 'anon.fake_last_name()', name: 'fake_last_name', args: [], description: 'Fake last name' },
  { function: 'anon.fake_phone()', name: 'fake_phone', args: [], description: 'Fake phone number' },
  { function: 'anon.fake_iban()', name: 'fake_iban', args: [], description: 'Fake IBAN' },
  { function: 'anon.fake_address()', name: 'fake_address', args: [], description: 'Fake street address' },
  { function: 'anon.fake_city()', name: 'fake_city', args: [], description: 'Fake city' },
  { function: 'anon.fake_company()', name: 'fake_company', args: [], description: 'Fake company name' },
  { function: 'anon.hash({COL})', name: 'hash', args: ['col'], description: 'SHA-256 of the value, hex (stable for the same value)' },
  { function: "anon.partial({COL}, 2, '***', 2)", name: 'partial', args: ['col', 'int', 'text', 'int'], description: 'Keeps the first and last characters given, the rest replaced by the padding' },
  { function: "anon.random_date_between('2000-01-01', '2020-12-31')", name: 'random_date_between', args: ['date', 'date'], description: 'A random date in the range (new on every read)' },
  { function: 'anon.random_int_between(1, 100)', name: 'random_int_between', args: ['int', 'int'], description: 'A random integer in the range (new on every read)' },
  { function: "anon.constant('REDACTED')", name: 'constant', args: ['text'], description: 'The same constant for every row' },
  { function: 'NULL', name: 'null', args: [], description: 'NULL' },
];

/** A rule's masking function, parsed: which one, and its constant arguments (the column's place is null). */
export interface ParsedMasking {
  name: string;
  args: (string | number | null)[];
}

const COL_PLACEHOLDER = '__lampion_masked_column__';

/**
 * `masking_function` as a rule gives it, accepted only as exactly one call of an allowlisted
 * function with the arguments that function takes — `{COL}` where the column goes, constants
 * elsewhere — checked on the parse tree, so nothing else can ride along
 * (`anon.fake_email(); DROP TABLE users` is two statements and refused).
 */
export async function parseMaskingFunction(text: string): Promise<{ ok: true; masking: ParsedMasking } | { ok: false; message: string }> {
  const allowed = `one of ${MASKING_FUNCTIONS.map((f) => f.function).join(', ')}`;
  if (typeof text !== 'string' || text.length > 200 || /[\u0000-\u001f\u007f]/.test(text)) return { ok: false, message: `must be ${allowed}` };
  if (text.includes(COL_PLACEHOLDER)) return { ok: false, message: `must be ${allowed}` };
  let trees;
  try {
    trees = await statementTrees(`SELECT ${text.replace(/\{COL\}/g, COL_PLACEHOLDER)}`);
  } catch {
    return { ok: false, message: `is not a function call: must be ${allowed}` };
  }
  if (trees.length !== 1) return { ok: false, message: `must be a single function call: ${allowed}` };
  const sel = (trees[0].node as any).SelectStmt;
  const targets = sel?.targetList ?? [];
  const keys = Object.keys(sel ?? {}).filter((k) => !['targetList', 'limitOption', 'op'].includes(k));
  if (targets.length !== 1 || keys.length > 0) return { ok: false, message: `must be a single function call: ${allowed}` };
  const val = targets[0].ResTarget?.val;
  if (targets[0].ResTarget?.name) return { ok: false, message: `must be ${allowed}` };
  if (val?.A_Const?.isnull) return { ok: true, masking: { name: 'null', args: [] } };
  const call = val?.FuncCall;
  const names: string[] = (call?.funcname ?? []).map((n: any) => n?.String?.sval);
  if (!call || names.length !== 2 || names[0] !== 'anon') return { ok: false, message: `must be ${allowed}` };
  const extra = Object.keys(call).filter((k) => !['funcname', 'args', 'funcformat', 'location'].includes(k));
  if (extra.length) return { ok: false, message: `must be a plain call of ${allowed}` };
  const spec = MASKING_FUNCTIONS.find((f) => f.name === names[1] && f.name !== 'null');
  if (!spec) return { ok: false, message: `anon.${names[1]} is not an allowed masking function: ${allowed}` };
  const given: any[] = call.args ?? [];
  if (given.length !== spec.args.length) return { ok: false, message: `${spec.function.replace(/\(.*$/, '')} takes ${spec.args.length} argument(s), as in ${spec.function}` };
  const args: (string | number | null)[] = [];
  for (const [i, kind] of spec.args.entries()) {
    const a = given[i];
    if (kind === 'col') {
      const fields = a?.ColumnRef?.fields ?? [];
      if (fields.length !== 1 || fields[0]?.String?.sval !== COL_PLACEHOLDER) return { ok: false, message: `argument ${i + 1} of ${spec.function} must be {COL}` };
      args.push(null);
      continue;
    }
    const c = a?.A_Const;
    if (kind === 'int') {
      // A negative constant parses as a unary minus over a constant.
      const neg = a?.A_Expr?.kind === 'AEXPR_OP' && a.A_Expr.name?.[0]?.String?.sval === '-' && !a.A_Expr.lexpr ? a.A_Expr.rexpr?.A_Const : undefined;
      const n = c?.ival !== undefined ? Number(c.ival.ival ?? 0) : neg?.ival !== undefined ? -Number(neg.ival.ival ?? 0) : undefined;
      if (n === undefined || !Number.isSafeInteger(n)) return { ok: false, message: `argument ${i + 1} of ${spec.function} must be an integer constant` };
      args.push(n);
      continue;
    }
    const s = c?.sval?.sval ?? (c?.sval ? '' : undefined);
    if (s === undefined) return { ok: false, message: `argument ${i + 1} of ${spec.function} must be a quoted constant` };
    if (kind === 'date' && !/^\d{4}-\d{2}-\d{2}$/.test(s)) return { ok: false, message: `argument ${i + 1} of ${spec.function} must be a date 'YYYY-MM-DD'` };
    args.push(s);
  }
  if (spec.name === 'partial' && ((args[1] as number) < 0 || (args[3] as number) < 0)) return { ok: false, message: 'anon.partial keeps a non-negative number of characters' };
  if (spec.name === 'random_int_between' && (args[0] as number) > (args[1] as number)) return { ok: false, message: 'anon.random_int_between needs its lower bound first' };
  if (spec.name === 'random_date_between' && String(args[0]) > String(args[1])) return { ok: false, message: 'anon.random_date_between needs its earlier date first' };
  return { ok: true, masking: { name: spec.name, args } };
}

/** The rule as the API shows it again: the canonical text of what was parsed. */
export function maskingText(m: ParsedMasking): string {
  if (m.name === 'null') return 'NULL';
  const arg = (a: string | number | null) => (a === null ? '{COL}' : typeof a === 'number' ? String(a) : quoteLiteral(a));
  return `anon.${m.name}(${m.args.map(arg).join(', ')})`;
}

/**
 * The SQL expression a masked view selects for a column under a rule, cast back to the column's
 * type where the function's result is text. Fakes are seeded by the value, so a value always
 * gets the same fake (joins and group-bys over masked columns still line up).
 */
export function maskExpression(m: ParsedMasking, column: string, columnType: string): string {
  const col = quoteIdent(column);
  const lit = (a: string | number | null) => (typeof a === 'number' ? String(a) : quoteLiteral(String(a)));
  const castBack = (e: string) => `(${e})::${columnType}`;
  switch (m.name) {
    case 'null':
      return `NULL::${columnType}`;
    case 'hash':
      return castBack(`anon.hash(${col}::text)`);
    case 'partial':
      return castBack(`anon.partial(${col}::text, ${lit(m.args[1])}, ${lit(m.args[2])}, ${lit(m.args[3])})`);
    case 'random_date_between':
      return castBack(`anon.random_date_between(${lit(m.args[0])}::date, ${lit(m.args[1])}::date)`);
    case 'random_int_between':
      return castBack(`anon.random_int_between(${lit(m.args[0])}, ${lit(m.args[1])})`);
    case 'constant':
      return castBack(`anon.constant(${lit(m.args[0])})`);
    default:
      if (!MASKING_FUNCTIONS.some((f) => f.name === m.name)) throw new Error(`not a masking function: ${m.name}`);
      return castBack(`CASE WHEN ${col} IS NULL THEN NULL ELSE anon.${m.name}(${col}::text) END`);
  }
}

const FIRST = ['Alice', 'Bruno', 'Chloé', 'Daniel', 'Elena', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Keiko', 'Liam', 'Maya', 'Noah', 'Olga', 'Pablo', 'Quinn', 'Rosa', 'Sami', 'Tara'];
const LAST = ['Anders', 'Becker', 'Costa', 'Dubois', 'Evans', 'Fischer', 'García', 'Hansen', 'Ivanova', 'Jensen', 'Kowalski', 'Laurent', 'Moreau', 'Nakamura', 'Okafor', 'Petrov', 'Rossi', 'Silva', 'Tanaka', 'Weber'];
const CITIES = ['Lisbon', 'Lyon', 'Leipzig', 'Porto', 'Ghent', 'Bologna', 'Kraków', 'Aarhus', 'Tampere', 'Valencia', 'Graz', 'Utrecht', 'Brno', 'Cork', 'Malmö', 'Basel'];
const STREETS = ['Maple Street', 'Harbour Road', 'Station Avenue', 'Mill Lane', 'Church Street', 'Park Road', 'High Street', 'Bridge Street', 'Garden Row', 'Elm Close'];
const COMPANIES = ['Northwind', 'Bluebird Labs', 'Acme Logistics', 'Greenfield Foods', 'Orbital Systems', 'Redwood Partners', 'Silverline Media', 'Cobalt Works', 'Harbor Analytics', 'Summit Textiles'];
const arr = (xs: string[]) => `ARRAY[${xs.map(quoteLiteral).join(', ')}]::text[]`;

/**
 * The `anon` schema and its functions. Each has a fixed search_path (nothing the caller puts on
 * its path can stand in for what it calls) and none reads a table. Re-runnable.
 */
export function anonSchemaSql(): string[] {
  const fn = (sig: string, returns: string, volatility: 'IMMUTABLE' | 'VOLATILE', body: string) =>
    `CREATE OR REPLACE FUNCTION anon.${sig} RETURNS ${returns} LANGUAGE sql ${volatility} PARALLEL ${volatility === 'VOLATILE' ? 'RESTRICTED' : 'SAFE'} SET search_path = pg_catalog AS $lampion$ ${body} $lampion$`;
  return [
    'CREATE SCHEMA IF NOT EXISTS anon',
    fn('seed(v text)', 'bigint', 'IMMUTABLE', `SELECT ('x' || substr(encode(sha256(convert_to(coalesce(v, ''), 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint`),
    fn('pick(choices text[], v text)', 'text', 'IMMUTABLE', 'SELECT choices[1 + (anon.seed(v) % array_length(choices, 1))::int]'),
    fn('hash(v text)', 'text', 'IMMUTABLE', `SELECT encode(sha256(convert_to(v, 'UTF8')), 'hex')`),
    fn('fake_first_name(v text)', 'text', 'IMMUTABLE', `SELECT anon.pick(${arr(FIRST)}, v)`),
    fn('fake_last_name(v text)', 'text', 'IMMUTABLE', `SELECT anon.pick(${arr(LAST)}, 'last:' || v)`),
    fn('fake_email(v text)', 'text', 'IMMUTABLE', `SELECT lower(anon.fake_first_name(v) || '.' || anon.fake_last_name(v)) || (anon.seed('n:' || v) % 1000)::text || '@example.com'`),
    fn('fake_phone(v text)', 'text', 'IMMUTABLE', `SELECT '+1-555-' || lpad((anon.seed('p:' || v) % 10000)::text, 4, '0') || '-' || lpad((anon.seed('q:' || v) % 1000)::text, 3, '0')`),
    fn('fake_iban(v text)', 'text', 'IMMUTABLE', `SELECT 'DE' || lpad((anon.seed('i:' || v) % 100)::text, 2, '0') || lpad((anon.seed('j:' || v) % 1000000000)::text, 9, '0') || lpad((anon.seed('k:' || v) % 1000000000)::text, 9, '0')`),
    fn('fake_city(v text)', 'text', 'IMMUTABLE', `SELECT anon.pick(${arr(CITIES)}, 'c:' || v)`),
    fn('fake_address(v text)', 'text', 'IMMUTABLE', `SELECT (1 + anon.seed('a:' || v) % 250)::text || ' ' || anon.pick(${arr(STREETS)}, 's:' || v) || ', ' || anon.fake_city(v)`),
    fn('fake_company(v text)', 'text', 'IMMUTABLE', `SELECT anon.pick(${arr(COMPANIES)}, 'co:' || v)`),
    fn('partial(v text, prefix int, padding text, suffix int)', 'text', 'IMMUTABLE', 'SELECT CASE WHEN v IS NULL THEN NULL WHEN length(v) <= prefix + suffix THEN padding ELSE left(v, prefix) || padding || right(v, suffix) END'),
    fn('random_date_between(lo date, hi date)', 'date', 'VOLATILE', 'SELECT lo + floor(random() * (hi - lo + 1))::int'),
    fn('random_int_between(lo int, hi int)', 'int', 'VOLATILE', 'SELECT lo + floor(random() * (hi::bigint - lo + 1))::int'),
    fn('constant(v text)', 'text', 'IMMUTABLE', 'SELECT v'),
  ];
}

export const ANALYST_ROLE = 'lampion_analyst';
export const MASKED_SCHEMA = 'lampion_masked';

/** A table of the masked database as the compute reports it. */
export interface MaskedTable {
  schema: string;
  table: string;
  columns: { name: string; type: string }[];
}

export interface MaskRule {
  schema: string;
  table: string;
  column: string;
  masking: ParsedMasking;
}

/** A public table keeps its name in the masked schema; another schema's is "schema.table". */
export function maskedViewName(schema: string, table: string): string {
  return schema === 'public' ? table : `${schema}.${table}`;
}

export const columnKey = (schema: string, table: string, column: string) => `${schema}.${table}.${column}`;

/**
 * The statements that make the analyst's view of a database, run in one transaction as the
 * platform's role. The analyst reaches nothing but the masked schema (views owned by the user
 * role, `security_barrier`) and `anon`: every user schema's USAGE is taken from PUBLIC (and
 * given back to each other role by name), so neither a table, nor a function or view there that
 * reads one, nor anything in another database (CONNECT likewise) is in its reach. A column with
 * a rule shows the rule's expression; one without shows its value only if it was known when
 * masking was enabled — any other (added later) is NULL until a rule names it.
 */
export function maskingSetupSql(i: {
  tables: MaskedTable[];
  rules: MaskRule[];
  /** Columns shown as they are when no rule names them (schema.table.column). */
  knownColumns: ReadonlySet<string>;
  userSchemas: string[];
  otherDatabases: string[];
  /** Roles that keep what PUBLIC had (every role but the analyst and the platform's). */
  otherRoles: string[];
  userRole: string;
  analystPassword: string;
  analystExists: boolean;
}): string[] {
  const q = quoteIdent;
  const out: string[] = [...anonSchemaSql()];
  out.push(
    i.analystExists
      ? `ALTER ROLE ${q(ANALYST_ROLE)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD ${quoteLiteral(i.analystPassword)}`
      : `CREATE ROLE ${q(ANALYST_ROLE)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD ${quoteLiteral(i.analystPassword)}`,
    `ALTER ROLE ${q(ANALYST_ROLE)} SET search_path = ${q(MASKED_SCHEMA)}, anon`,
    `ALTER ROLE ${q(ANALYST_ROLE)} SET default_transaction_read_only = on`,
  );
  const keep = i.otherRoles.map(q).join(', ');
  for (const s of i.userSchemas) {
    out.push(`REVOKE ALL ON SCHEMA ${q(s)} FROM PUBLIC`, `REVOKE ALL ON SCHEMA ${q(s)} FROM ${q(ANALYST_ROLE)}`);
    if (keep) out.push(`GRANT USAGE ON SCHEMA ${q(s)} TO ${keep}`);
  }
  for (const d of i.otherDatabases) {
    out.push(`REVOKE CONNECT ON DATABASE ${q(d)} FROM PUBLIC`, `REVOKE CONNECT ON DATABASE ${q(d)} FROM ${q(ANALYST_ROLE)}`);
    if (keep) out.push(`GRANT CONNECT ON DATABASE ${q(d)} TO ${keep}`);
  }
  out.push(`DROP SCHEMA IF EXISTS ${q(MASKED_SCHEMA)} CASCADE`, `CREATE SCHEMA ${q(MASKED_SCHEMA)} AUTHORIZATION ${q(i.userRole)}`);
  const ruleOf = new Map(i.rules.map((r) => [columnKey(r.schema, r.table, r.column), r]));
  for (const t of i.tables) {
    const cols = t.columns.map((c) => {
      const key = columnKey(t.schema, t.table, c.name);
      const rule = ruleOf.get(key);
      const expr = rule ? maskExpression(rule.masking, c.name, c.type) : i.knownColumns.has(key) ? q(c.name) : `NULL::${c.type}`;
      return `${expr} AS ${q(c.name)}`;
    });
    if (cols.length === 0) continue;
    const view = `${q(MASKED_SCHEMA)}.${q(maskedViewName(t.schema, t.table))}`;
    out.push(`CREATE VIEW ${view} WITH (security_barrier) AS SELECT ${cols.join(', ')} FROM ${q(t.schema)}.${q(t.table)}`, `ALTER VIEW ${view} OWNER TO ${q(i.userRole)}`);
  }
  out.push(
    `REVOKE ALL ON SCHEMA anon FROM PUBLIC`,
    `GRANT USAGE ON SCHEMA anon TO ${q(ANALYST_ROLE)}, ${q(i.userRole)}`,
    `GRANT USAGE ON SCHEMA ${q(MASKED_SCHEMA)} TO ${q(ANALYST_ROLE)}`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA ${q(MASKED_SCHEMA)} TO ${q(ANALYST_ROLE)}`,
  );
  return out;
}

/** Everything masking made, gone; what it took from PUBLIC, given back. */
export function maskingTeardownSql(i: { revokedSchemas: string[]; revokedDatabases: string[]; analystExists: boolean }): string[] {
  const q = quoteIdent;
  const out = [`DROP SCHEMA IF EXISTS ${q(MASKED_SCHEMA)} CASCADE`, 'DROP SCHEMA IF EXISTS anon CASCADE'];
  for (const s of i.revokedSchemas) out.push(`GRANT USAGE ON SCHEMA ${q(s)} TO PUBLIC`);
  for (const d of i.revokedDatabases) out.push(`GRANT CONNECT ON DATABASE ${q(d)} TO PUBLIC`);
  if (i.analystExists) out.push(`DROP OWNED BY ${q(ANALYST_ROLE)}`, `DROP ROLE ${q(ANALYST_ROLE)}`);
  return out;
}
