import { CONTROL_CHARS } from './names';

/**
 * The connection string of a database to import: a `postgresql://` (or `postgres://`) URL with
 * one TCP host. Pure: the API checks it (422) and redacts it before sealing it; the host worker
 * parses it again after unsealing. Its password must never be written anywhere but the env of
 * the pg_dump that uses it: see redactDsn and scrubSecret.
 */

/** libpq's sslmode values, honoured by the host's TLS tunnel (engine/tlsTunnel). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface SourceDsn {
  user: string;
  password?: string;
  host: string;
  port: number;
  database: string;
  /** libpq's default is prefer: TLS when the server offers it. */
  sslmode: SslMode;
  /** Seconds; libpq's connect_timeout, bounded here. */
  connectTimeoutSeconds?: number;
  applicationName?: string;
}

export class SourceDsnError extends Error {
  readonly name = 'SourceDsnError';
}

const DEFAULT_PORT = 5432;
const MAX_CONNECT_TIMEOUT_S = 60;
/** Query parameters a source DSN may carry; anything else would be silently ignored by us. */
const KNOWN_PARAMS = new Set(['sslmode', 'connect_timeout', 'application_name', 'sslrootcert']);

function decode(part: string, what: string): string {
  let out: string;
  try {
    out = decodeURIComponent(part);
  } catch {
    throw new SourceDsnError(`the ${what} is not valid percent-encoding`);
  }
  // NUL cannot travel in an environment variable or a libpq parameter.
  if (out.includes('\u0000')) throw new SourceDsnError(`the ${what} contains a NUL character`);
  return out;
}

/**
 * Parses a source DSN. Messages never quote the DSN (it holds a password). Unix-socket hosts and
 * several hosts are refused: an import reads one remote server over TCP.
 */
export function parseSourceDsn(text: string): SourceDsn {
  if (typeof text !== 'string' || text.length === 0) throw new SourceDsnError('must not be empty');
  if (text.length > 4096) throw new SourceDsnError('must be at most 4096 characters');
  if (CONTROL_CHARS.test(text)) throw new SourceDsnError('must not contain control characters');
  const m = /^(postgres(?:ql)?):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(text);
  if (!m) throw new SourceDsnError('must be a postgresql://user:password@host:port/database URL');
  const authority = m[2];
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : '';
  const hostport = at >= 0 ? authority.slice(at + 1) : authority;
  if (!userinfo) throw new SourceDsnError('must name a user (postgresql://user:password@host/database)');
  const colon = userinfo.indexOf(':');
  const user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, 'user');
  const password = colon >= 0 ? decode(userinfo.slice(colon + 1), 'password') : undefined;
  if (!user) throw new SourceDsnError('must name a user (postgresql://user:password@host/database)');
  if (user.length > 63) throw new SourceDsnError('the user name is longer than 63 bytes');

  if (!hostport) throw new SourceDsnError('must name a host');
  if (hostport.includes(',')) throw new SourceDsnError('must name exactly one host');
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(hostport);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else {
    const c = hostport.lastIndexOf(':');
    host = c >= 0 ? hostport.slice(0, c) : hostport;
    portText = c >= 0 ? hostport.slice(c + 1) : undefined;
    host = decode(host, 'host');
    if (host.startsWith('/') || host.startsWith('%2F')) throw new SourceDsnError('must name a TCP host, not a unix socket');
    if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(host)) throw new SourceDsnError('the host is not a valid host name or IP address');
  }
  let port = DEFAULT_PORT;
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw new SourceDsnError('the port must be a number from 1 to 65535');
    port = Number(portText);
  }

  const database = m[3] && m[3] !== '/' ? decode(m[3].slice(1), 'database name') : user;
  if (!database) throw new SourceDsnError('the database name must not be empty');
  if (database.length > 63) throw new SourceDsnError('the database name is longer than 63 bytes');

  const dsn: SourceDsn = { user, ...(password !== undefined ? { password } : {}), host, port, database, sslmode: 'prefer' };
  if (m[4] && m[4].length > 1) {
    for (const pair of m[4].slice(1).split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const key = decode(eq >= 0 ? pair.slice(0, eq) : pair, 'parameter name');
      const value = decode(eq >= 0 ? pair.slice(eq + 1).replace(/\+/g, ' ') : '', `value of ${key}`);
      if (!KNOWN_PARAMS.has(key)) throw new SourceDsnError(`unsupported parameter "${key.slice(0, 40)}" (supported: ${[...KNOWN_PARAMS].join(', ')})`);
      if (key === 'sslmode') {
        if (!(SSL_MODES as readonly string[]).includes(value)) throw new SourceDsnError(`sslmode must be one of ${SSL_MODES.join(', ')}`);
        dsn.sslmode = value as SslMode;
      } else if (key === 'connect_timeout') {
        if (!/^\d{1,4}$/.test(value)) throw new SourceDsnError('connect_timeout must be a number of seconds');
        const s = Number(value);
        // libpq: 0 (or absent) waits forever; an import never does.
        if (s > 0) dsn.connectTimeoutSeconds = Math.min(Math.max(s, 2), MAX_CONNECT_TIMEOUT_S);
      } else if (key === 'application_name') {
        dsn.applicationName = value.slice(0, 63);
      } else if (key === 'sslrootcert') {
        // A path would name a file on the platform's host: only the system's CAs may be chosen.
        if (value !== 'system') throw new SourceDsnError('sslrootcert may only be "system" (the host\'s certificate authorities)');
      }
    }
  }
  return dsn;
}

/** The DSN as the catalog, logs and answers may show it: no password, no parameters. */
export function redactDsn(dsn: SourceDsn): string {
  const host = dsn.host.includes(':') ? `[${dsn.host}]` : dsn.host;
  return `postgresql://${encodeURIComponent(dsn.user)}@${host}:${dsn.port}/${encodeURIComponent(dsn.database)}`;
}

/**
 * Removes every spelling of a secret from a text that may reach a user, a log, the catalog or
 * workflow history (an error of pg_dump, psql or a driver): the password as is, percent-encoded,
 * and the whole DSN it came in.
 */
export function scrubSecret(text: string, secrets: (string | undefined)[]): string {
  let out = text;
  const forms = new Set<string>();
  for (const s of secrets) {
    if (!s) continue;
    forms.add(s);
    forms.add(encodeURIComponent(s));
    try {
      forms.add(decodeURIComponent(s));
    } catch {
      // not percent-encoded
    }
  }
  // Longest first, so a DSN is replaced whole before the password inside it.
  for (const f of [...forms].filter((f) => f.length >= 1).sort((a, b) => b.length - a.length)) {
    out = out.split(f).join('****');
  }
  return out;
}

/** The oldest source major an import supports (pg_dump 18 reads older ones, untested here). */
export const MIN_SOURCE_MAJOR = 12;
