import { checkIdentifier, quoteIdent } from './identifiers';

export { checkIdentifier, MAX_IDENTIFIER_BYTES } from './identifiers';

/**
 * pg_dump invocations and the names around them, built by pure functions. Nothing user-supplied
 * reaches a command line unquoted: the database goes in PGDATABASE (which libpq never expands as
 * a connection string, unlike a `-d` argument), the table in a fully quoted `--table` pattern.
 */

export interface TableRef {
  /** Absent: the table visible on the user's default search_path. */
  schema?: string;
  name: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/**
 * `table` or `schema.table`, names exactly as stored (case-sensitive, no SQL quoting): the first
 * dot separates the schema, so a table whose name contains a dot is named with its schema
 * (`public.a.b` is table `a.b` in `public`).
 */
export function parseTableRef(input: string): Parsed<TableRef> {
  const dot = input.indexOf('.');
  const ref: TableRef = dot < 0 ? { name: input } : { schema: input.slice(0, dot), name: input.slice(dot + 1) };
  const bad = (ref.schema !== undefined ? checkIdentifier(ref.schema, 'schema') : undefined) ?? checkIdentifier(ref.name, 'table');
  return bad ? { ok: false, message: bad } : { ok: true, value: ref };
}

/**
 * One identifier in pg_dump's pattern syntax, matching exactly itself: inside double quotes `*`,
 * `?`, `.`, `$`, regex characters and letter case are literal, and `""` is a double quote.
 */
export function quotePatternIdentifier(s: string): string {
  return quoteIdent(s);
}

/** The `--table` pattern that matches exactly this one table. */
export function dumpTablePattern(t: TableRef): string {
  const name = quotePatternIdentifier(t.name);
  return t.schema === undefined ? name : `${quotePatternIdentifier(t.schema)}.${name}`;
}

/** What pg_dump sees in pg_stat_activity; tests and operators find the dump's session by it. */
export const DUMP_APPLICATION_NAME = 'lampion_dump';

/**
 * Installed by the platform into every cluster (src/engine/roles.ts), not by the user: left out
 * of dumps, since restoring it needs a superuser and the dump would not load as cloud_admin.
 */
export const PLATFORM_EXTENSIONS: readonly string[] = ['pg_stat_statements'];

/** An extension of the database; built-in ones (created with the cluster, like plpgsql) pg_dump never dumps. */
export interface InstalledExtension {
  name: string;
  builtin: boolean;
}

/** The database's extensions, and which are built in (pg_dump's own rule: an OID below FirstNormalObjectId). */
export const LIST_EXTENSIONS_SQL = 'SELECT extname AS name, oid < 16384 AS builtin FROM pg_catalog.pg_extension ORDER BY extname';

/**
 * The pg_dump arguments that leave the platform's extensions out of a whole-database dump:
 * `--exclude-extension` from pg_dump 17. Before it there is only an include list, `--extension`,
 * which fails when it matches nothing: the database's other extensions, or else a built-in one
 * (plpgsql), which pg_dump matches and, being built in, dumps nothing of.
 */
export function extensionArgs(pgDumpMajor: number, installed: readonly InstalledExtension[], exclude: readonly string[] = PLATFORM_EXTENSIONS): string[] {
  const excluded = installed.filter((e) => !e.builtin && exclude.includes(e.name));
  if (!excluded.length) return [];
  if (pgDumpMajor >= 17) return excluded.map((e) => `--exclude-extension=${quotePatternIdentifier(e.name)}`);
  const kept = installed.filter((e) => !e.builtin && !exclude.includes(e.name));
  const include = kept.length ? kept : installed.filter((e) => e.builtin).slice(0, 1);
  // Nothing to name (no built-in extension either): the dump keeps the platform's extension.
  return include.map((e) => `--extension=${quotePatternIdentifier(e.name)}`);
}

export interface PgDumpTarget {
  binDir: string;
  /** The major of that pg_dump (what it accepts differs). */
  major: number;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  table?: TableRef;
  /** The database's extensions, for a whole-database dump (see {@link extensionArgs}). */
  extensions?: readonly InstalledExtension[];
  connectTimeoutSeconds?: number;
  /** How long pg_dump waits for each table's share lock before failing (it never waits forever). */
  lockWaitTimeoutMs?: number;
}

export interface PgDumpCommand {
  file: string;
  args: string[];
  /** The whole environment of the child: nothing of the parent's PG* variables leaks in. */
  env: Record<string, string>;
}

/**
 * A plain-SQL pg_dump to stdout. The password travels in PGPASSWORD, never on the command line
 * (where `ps` shows it); no password file or service file is consulted; TLS is off (the compute is
 * on loopback and the platform's own builds may lack OpenSSL); messages stay in English (LC_ALL=C)
 * so failures can be classified.
 */
export function pgDumpCommand(t: PgDumpTarget): PgDumpCommand {
  const args = ['--format=plain', '--no-password', `--lock-wait-timeout=${t.lockWaitTimeoutMs ?? 60_000}`];
  if (t.table) args.push(`--table=${dumpTablePattern(t.table)}`);
  else args.push(...extensionArgs(t.major, t.extensions ?? []));
  return {
    file: `${t.binDir.replace(/\/+$/, '')}/pg_dump`,
    args,
    env: {
      PGHOST: t.host,
      PGPORT: String(t.port),
      PGUSER: t.user,
      PGPASSWORD: t.password,
      PGDATABASE: t.database,
      PGSSLMODE: 'disable',
      PGCONNECT_TIMEOUT: String(t.connectTimeoutSeconds ?? 10),
      PGAPPNAME: DUMP_APPLICATION_NAME,
      PGPASSFILE: '/dev/null',
      PGSERVICEFILE: '/dev/null',
      LC_ALL: 'C',
      PATH: '/usr/bin:/bin',
    },
  };
}

export type DumpFailure =
  | { kind: 'database_not_found' }
  | { kind: 'table_not_found' }
  | { kind: 'unreachable'; message: string }
  | { kind: 'failed'; message: string };

/** pg_dump's stderr, as a user should see it: its error lines, without any occurrence of the password. */
export function dumpErrorMessage(stderr: string, password: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /^pg_dump: (error|detail|hint):/.test(l));
  let text = (errors.length ? errors : lines).slice(-5).join(' ');
  if (password) text = text.split(password).join('********');
  return text.slice(0, 2000) || 'pg_dump failed without a message';
}

/** What a pg_dump that ended before writing a byte tells about the request. */
export function classifyDumpFailure(stderr: string, password: string): DumpFailure {
  const message = dumpErrorMessage(stderr, password);
  if (/FATAL:\s+database ".*" does not exist/.test(stderr)) return { kind: 'database_not_found' };
  if (/no matching (tables|relations) were found/.test(stderr)) return { kind: 'table_not_found' };
  if (/Connection refused|could not connect|timeout expired|server closed the connection unexpectedly|the database system is (starting up|shutting down)/.test(stderr)) {
    return { kind: 'unreachable', message };
  }
  return { kind: 'failed', message };
}

/** 20261201T101500Z: sortable, and no colons (which some file systems refuse). */
export function dumpTimestamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * `Content-Disposition` for a dump: `<endpoint>-<database>[-<table>]-<UTC timestamp>.sql`. The
 * plain `filename` keeps letters, digits, `.`, `_` and `-` (anything else becomes `_`, so no quote,
 * slash or control character reaches a header or a path); `filename*` carries the exact UTF-8 name
 * when it differs.
 */
export function dumpContentDisposition(p: { endpointId: string; database: string; table?: TableRef; at: Date }): string {
  const table = p.table ? [p.table.schema === undefined ? p.table.name : `${p.table.schema}.${p.table.name}`] : [];
  const parts = [p.endpointId, p.database, ...table, dumpTimestamp(p.at)];
  const exact = `${parts.join('-')}.sql`;
  const ascii = `${parts.map((s) => s.replace(/[^A-Za-z0-9._-]/g, '_')).join('-')}.sql`;
  if (ascii === exact) return `attachment; filename="${ascii}"`;
  const encoded = encodeURIComponent(exact).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
