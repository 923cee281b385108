import { Client } from 'pg';
import type { SourceDsn } from '../domain/sourceDsn';
import { MIN_SOURCE_MAJOR, redactDsn, scrubSecret } from '../domain/sourceDsn';
import type { AvailableExtension } from './pgInstalls';
import { TlsTunnel, TUNNEL_PORT, TunnelTarget } from './tlsTunnel';

/**
 * What an import needs to know about its source before it starts: can the host reach it with
 * these credentials and this sslmode, which major it runs, how big it is, and whether its
 * extensions exist on the target's major. Source problems are answers (`errors`), never
 * exceptions: a bad source is the caller's to fix, not a failure of the platform.
 */

export type SourceErrorCode =
  | 'unreachable'
  | 'timeout'
  | 'bad_credentials'
  | 'access_denied'
  | 'tls_required'
  | 'tls_refused'
  | 'tls_verify_failed'
  | 'tls_failed'
  | 'database_not_found'
  | 'connection_failed'
  | 'unsupported_major'
  | 'missing_extension'
  | 'extension_needs_superuser';

export interface SourceError {
  code: SourceErrorCode;
  message: string;
}

export interface SourceExtension {
  name: string;
  version: string;
  availableOnTarget: boolean;
  /** The version CREATE EXTENSION installs on the target, when available. */
  targetVersion: string | null;
  /** Available, but only a superuser may create it (cloud_admin is not one). */
  requiresSuperuser: boolean;
}

export interface SourceFacts {
  pgVersion: string;
  major: number;
  sizeBytes: number;
  tables: number;
  extensions: SourceExtension[];
  tls: boolean;
}

export interface SourceInspection {
  ok: boolean;
  errors: SourceError[];
  source: SourceFacts | null;
}

/** What the target offers: its major and the extensions that major ships. */
export interface ImportTargetFacts {
  major: number;
  extensions: AvailableExtension[];
  /** Extensions every new cluster already has (created by the platform): never a problem. */
  preinstalled: readonly string[];
  /**
   * Extensions only a superuser may create that the platform creates itself before the load (in
   * schema public, where the source must have them too).
   */
  platformCreated: readonly string[];
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const QUERY_TIMEOUT_MS = 15_000;

export function tunnelTarget(dsn: SourceDsn): TunnelTarget {
  return {
    host: dsn.host,
    port: dsn.port,
    sslmode: dsn.sslmode,
    connectTimeoutMs: dsn.connectTimeoutSeconds ? dsn.connectTimeoutSeconds * 1000 : DEFAULT_CONNECT_TIMEOUT_MS,
  };
}

/**
 * A source connection error as the user should read it. `tunnel` says what happened below
 * Postgres (TCP, TLS); the server's own SQLSTATE says the rest.
 */
export function classifyConnectError(err: unknown, tunnel: Pick<TlsTunnel, 'lastFailure' | 'usedTls'> | undefined, dsn: SourceDsn): SourceError {
  const e = err as { code?: string; message?: string };
  const msg = scrubSecret(String(e?.message ?? err), [dsn.password]);
  const where = redactDsn(dsn);
  if (tunnel?.lastFailure) return { code: tunnel.lastFailure.kind, message: scrubSecret(tunnel.lastFailure.message, [dsn.password]) };
  switch (e?.code) {
    case '28P01':
      return { code: 'bad_credentials', message: `password authentication failed for user "${dsn.user}" on ${where}` };
    case '28000':
      if (/no encryption|SSL off/i.test(msg) && tunnel?.usedTls !== true) {
        return { code: 'tls_required', message: `the server at ${dsn.host}:${dsn.port} accepts only TLS connections (sslmode=${dsn.sslmode}): ${msg}` };
      }
      return { code: 'access_denied', message: msg };
    case '3D000':
      return { code: 'database_not_found', message: `database "${dsn.database}" does not exist on ${dsn.host}:${dsn.port}` };
  }
  if (/client password must be a string|password authentication/i.test(msg)) {
    return { code: 'bad_credentials', message: `the server at ${dsn.host}:${dsn.port} asks for a password and the DSN has none` };
  }
  if (/timeout/i.test(msg)) return { code: 'timeout', message: `no answer from ${dsn.host}:${dsn.port}: ${msg}` };
  return { code: 'connection_failed', message: `could not connect to ${where}: ${msg}` };
}

/** The server's major from server_version_num (e.g. 150013 → 15, 90624 → 9). */
export function majorOf(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100) / 100;
}

/** Compares the source with what the target offers: major and extensions. */
export function checkCompatibility(
  facts: Omit<SourceFacts, 'extensions'> & { extensions: { name: string; version: string; schema?: string }[] },
  target: ImportTargetFacts,
): { extensions: SourceExtension[]; errors: SourceError[] } {
  const errors: SourceError[] = [];
  if (facts.major > target.major) {
    errors.push({
      code: 'unsupported_major',
      message: `the source runs PostgreSQL ${facts.pgVersion}, newer than the project's ${target.major}: a dump of a newer server cannot be loaded into an older one; import into a project of PostgreSQL ${facts.major} or later`,
    });
  } else if (facts.major < MIN_SOURCE_MAJOR) {
    errors.push({ code: 'unsupported_major', message: `the source runs PostgreSQL ${facts.pgVersion}; imports support sources of PostgreSQL ${MIN_SOURCE_MAJOR} and later` });
  }
  const offered = new Map(target.extensions.map((x) => [x.name, x]));
  const extensions = facts.extensions.map((x) => {
    const t = offered.get(x.name);
    const pre = target.preinstalled.includes(x.name);
    const byPlatform = target.platformCreated.includes(x.name) && (x.schema === undefined || x.schema === 'public');
    return { name: x.name, version: x.version, availableOnTarget: Boolean(t), targetVersion: t?.defaultVersion ?? null, requiresSuperuser: Boolean(t && !t.userCreatable && !pre && !byPlatform) };
  });
  for (const x of extensions) {
    if (!x.availableOnTarget) {
      errors.push({ code: 'missing_extension', message: `extension "${x.name}" ${x.version} is not available on PostgreSQL ${target.major} here` });
    } else if (x.requiresSuperuser) {
      errors.push({
        code: 'extension_needs_superuser',
        message: target.platformCreated.includes(x.name)
          ? `extension "${x.name}" is created by the platform only in schema public, and the source has it elsewhere`
          : `extension "${x.name}" can only be created by a superuser, and the import runs as the project's role cloud_admin, which is not one`,
      });
    }
  }
  return { extensions, errors };
}

/** A session on the source through a tunnel that already runs; closed by the caller. */
export async function sourceClient(tunnel: TlsTunnel, dsn: SourceDsn, connectTimeoutMs: number): Promise<Client> {
  const client = new Client({
    host: tunnel.dir,
    port: TUNNEL_PORT,
    user: dsn.user,
    password: dsn.password,
    database: dsn.database,
    ssl: false,
    application_name: dsn.applicationName ?? 'lampion-import',
    connectionTimeoutMillis: connectTimeoutMs + 2000,
    statement_timeout: QUERY_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS + 2000,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Reads the source's version, size, tables and extensions; checks them against the target. */
export async function inspectSource(dsn: SourceDsn, target: ImportTargetFacts, tunnelOptions: Parameters<typeof TlsTunnel.open>[1] = {}): Promise<SourceInspection> {
  const t = tunnelTarget(dsn);
  const tunnel = await TlsTunnel.open(t, tunnelOptions);
  let client: Client | undefined;
  try {
    try {
      client = await sourceClient(tunnel, dsn, t.connectTimeoutMs);
    } catch (err) {
      return { ok: false, errors: [classifyConnectError(err, tunnel, dsn)], source: null };
    }
    const { rows: [v] } = await client.query<{ version: string; num: string; size: string }>(
      "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num, pg_database_size(current_database())::text AS size",
    );
    // Tables pg_dump copies: ordinary and partitioned, outside system schemas, not an extension's own.
    const { rows: [tables] } = await client.query<{ n: number }>(`
      SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`);
    const { rows: exts } = await client.query<{ name: string; version: string; schema: string }>(
      'SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname',
    );
    const major = majorOf(Number(v.num));
    const base = { pgVersion: v.version.split(' ')[0], major, sizeBytes: Number(v.size), tables: tables.n, tls: tunnel.usedTls === true };
    const { extensions, errors } = checkCompatibility({ ...base, extensions: exts }, target);
    return { ok: errors.length === 0, errors, source: { ...base, extensions } };
  } catch (err) {
    // Connected, then a query failed (permissions, a timeout): still the source's answer.
    return { ok: false, errors: [classifyConnectError(err, tunnel, dsn)], source: null };
  } finally {
    await client?.end().catch(() => undefined);
    await tunnel.close();
  }
}
