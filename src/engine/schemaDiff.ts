import { Client } from 'pg';
import { SYSTEM_ROLE } from '../domain/roles';

/** A database of a compute on this host, reached over its private socket as the platform's role. */
export interface DiffDatabase {
  socketDir: string;
  port: number;
  database: string;
}

// @pgkit/migra (with pg-promise underneath) is loaded on first use: only merges need it.
type Migra = typeof import('@pgkit/migra');
type PgkitClient = typeof import('@pgkit/client');
let loaded: Promise<{ migra: Migra; client: PgkitClient }> | undefined;
const load = () => (loaded ??= Promise.all([import('@pgkit/migra'), import('@pgkit/client')]).then(([migra, client]) => ({ migra, client })));

const url = (d: DiffDatabase) =>
  `postgresql://${encodeURIComponent(SYSTEM_ROLE)}@localhost:${d.port}/${encodeURIComponent(d.database)}?host=${encodeURIComponent(d.socketDir)}&application_name=lampion-merge`;

/**
 * The DDL that turns `from`'s schema into `to`'s, one statement per entry, without trailing
 * semicolons: migra's diff (tables, columns, constraints, indexes, sequences, views, functions,
 * triggers, enums, extensions, privileges), then the two things it gets wrong or leaves out,
 * fixed here — values added to an enum (migra recreates the type, and with it every view over
 * its columns; Postgres can simply ADD VALUE) and comments (migra has none).
 */
export async function schemaDiff(from: DiffDatabase, to: DiffDatabase): Promise<string[]> {
  const { migra, client } = await load();
  const opts = { pgpOptions: { initialize: { noWarnings: true } } } as Parameters<PgkitClient['createClient']>[1];
  const a = client.createClient(url(from), opts);
  const b = client.createClient(url(to), opts);
  let statements: string[];
  try {
    const m = await migra.Migration.create(a, b, { ignore_extension_versions: true });
    m.set_safety(false);
    m.add_all_changes(true);
    statements = m.statements.array.map((s) => s.trim().replace(/;\s*$/, '')).filter((s) => s !== '' && !/^set check_function_bodies = off$/i.test(s));
  } finally {
    await Promise.all([a.end(), b.end()].map((p) => Promise.resolve(p).catch(() => undefined)));
  }
  const [ca, cb] = [await systemClient(from), await systemClient(to)];
  try {
    statements = await enumAdditions(statements, ca, cb);
    statements.push(...(await commentChanges(ca, cb)));
  } finally {
    await Promise.all([ca.end().catch(() => undefined), cb.end().catch(() => undefined)]);
  }
  return statements;
}

async function systemClient(d: DiffDatabase): Promise<Client> {
  const c = new Client({ host: d.socketDir, port: d.port, user: SYSTEM_ROLE, database: d.database, application_name: 'lampion-merge' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

async function enumLabels(c: Client): Promise<Map<string, string[]>> {
  const r = await c.query<{ name: string; labels: string[] }>(
    `SELECT n.nspname || chr(1) || t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
      GROUP BY n.nspname, t.typname`,
  );
  return new Map(r.rows.map((x) => [x.name, x.labels]));
}

/** Old labels appear in the new list in the same order: the change is only additions. */
function onlyAdditions(old: string[], now: string[]): boolean {
  let i = 0;
  for (const l of now) if (l === old[i]) i++;
  return i === old.length && new Set(now).size === now.length;
}

/**
 * migra replaces an enum whose values changed: rename it away, create it anew, convert every
 * column through text, re-create dependent views, drop the old type. When values were only
 * added, that is an ALTER TYPE … ADD VALUE per value (no rewrite, no view dropped, no grant or
 * comment of a view lost), and the replacement's statements go.
 */
async function enumAdditions(statements: string[], from: Client, to: Client): Promise<string[]> {
  const renames = statements
    .map((s) => /^alter type "((?:[^"]|"")+)"\."((?:[^"]|"")+)" rename to "((?:[^"]|"")+)__old_version_to_be_dropped"$/.exec(s))
    .filter((m): m is RegExpExecArray => m !== null);
  if (renames.length === 0) return statements;
  const [oldLabels, newLabels] = [await enumLabels(from), await enumLabels(to)];
  let out = statements;
  let replaced = false;
  for (const m of renames) {
    const [schema, name] = [m[1].replace(/""/g, '"'), m[2].replace(/""/g, '"')];
    const key = `${schema}\u0001${name}`;
    const old = oldLabels.get(key);
    const now = newLabels.get(key);
    if (!old || !now || !onlyAdditions(old, now)) continue;
    replaced = true;
    const q = `"${m[1]}"."${m[2]}"`;
    const adds = now
      .map((label, i) => ({ label, i }))
      .filter(({ label }) => !old.includes(label))
      .map(({ label, i }) => (i === 0 ? `ALTER TYPE ${q} ADD VALUE ${literal(label)} BEFORE ${literal(now[1])}` : `ALTER TYPE ${q} ADD VALUE ${literal(label)} AFTER ${literal(now[i - 1])}`));
    const typeRef = new RegExp(`type ${escapeRe(q)} using [^;]*::text::${escapeRe(q)}$`);
    out = out.flatMap((s) => {
      if (s === m[0]) return adds;
      if (s.startsWith(`create type ${q} as enum (`)) return [];
      if (s === `drop type "${m[1]}"."${m[2]}__old_version_to_be_dropped"`) return [];
      if (/^alter table .* alter column .* /.test(s) && typeRef.test(s)) return [];
      return [s];
    });
  }
  if (!replaced) return out;
  // Views migra dropped and re-created only because of the conversion: unchanged ones stay.
  if (out.some((s) => /^alter table .* alter column \S+ (set data )?type /i.test(s))) return out;
  const defs = await from.query<{ name: string; def: string }>(
    `SELECT format('"%s"."%s"', replace(n.nspname, '"', '""'), replace(c.relname, '"', '""')) AS name, pg_get_viewdef(c.oid) AS def
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v'`,
  );
  const unchanged = new Set(
    defs.rows
      .filter((v) => out.some((s) => norm(s) === norm(`create or replace view ${v.name} as ${v.def}`)))
      .map((v) => v.name),
  );
  return out.filter((s) => {
    const drop = /^drop view if exists ("(?:[^"]|"")+"\."(?:[^"]|"")+")$/.exec(s);
    if (drop && unchanged.has(drop[1])) return false;
    const create = /^create or replace view ("(?:[^"]|"")+"\."(?:[^"]|"")+") as /.exec(s);
    return !(create && unchanged.has(create[1]) && out.some((x) => x === `drop view if exists ${create[1]}`));
  });
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const norm = (s: string) => s.replace(/\s+/g, ' ').replace(/;\s*$/, '').trim();

/** Every user object's comment, keyed by the COMMENT ON target that names it. */
async function comments(c: Client): Promise<Map<string, string | null>> {
  const r = await c.query<{ target: string; description: string | null }>(`
    WITH user_ns AS (
      SELECT oid, nspname FROM pg_namespace
       WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
    ), not_ext AS (
      SELECT objid FROM pg_depend WHERE deptype = 'e'
    )
    SELECT format('%s %I.%I', CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname) AS target,
           d.description
      FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
      LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.oid NOT IN (SELECT objid FROM not_ext)
    UNION ALL
    SELECT format('COLUMN %I.%I.%I', n.nspname, c.relname, a.attname), d.description
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN user_ns n ON n.oid = c.relnamespace
      LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped AND c.oid NOT IN (SELECT objid FROM not_ext)
    UNION ALL
    SELECT format('%s %s', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, p.oid::regprocedure), d.description
      FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
      LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
     WHERE p.oid NOT IN (SELECT objid FROM not_ext)
    UNION ALL
    SELECT format('TYPE %I.%I', n.nspname, t.typname), d.description
      FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
      LEFT JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_type'::regclass
     WHERE t.typtype IN ('e', 'd', 'r') AND t.oid NOT IN (SELECT objid FROM not_ext)
    UNION ALL
    SELECT format('SCHEMA %I', n.nspname), d.description
      FROM user_ns n LEFT JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass
     WHERE n.oid NOT IN (SELECT objid FROM not_ext)`);
  return new Map(r.rows.map((x) => [x.target, x.description]));
}

/** COMMENT ON for every object of `to` whose comment differs from `from`'s (new objects too). */
async function commentChanges(from: Client, to: Client): Promise<string[]> {
  const [before, after] = [await comments(from), await comments(to)];
  const out: string[] = [];
  for (const [target, text] of after) {
    const was = before.get(target) ?? null;
    if (text !== was) out.push(`COMMENT ON ${target} IS ${text === null ? 'NULL' : literal(text)}`);
  }
  return out;
}
