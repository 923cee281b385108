import pg from 'pg';
import { BoundedQuery } from './boundedQuery';
import type { Logger } from 'pino';
import type { AuthContext } from './auth';
import type { ApiDeps } from './deps';
import { ApiError } from './errors';
import { directUserAccess, requireRunningCompute } from './compute';
import { requireEndpoint } from './lookup';
import type { EndpointListRow } from '../db/queries/endpoints';
import { touchEndpoint } from '../db/queries/endpoints';
import { isComputeGone, sqlErrorAnswer } from '../domain/sqlstate';
import type { Statement } from '../domain/pgsql/statement';

/**
 * The one executor: every statement a route runs on a compute goes through here. It runs as the
 * branch's user role (cloud_admin, never the platform's superuser), on a small pool per endpoint
 * and database, wakes a suspended compute, applies a statement timeout, and answers database
 * errors through the one SQLSTATE table (domain/sqlstate.ts).
 */

/** Types kept as the server's text: precision (int8, numeric), time zones and microseconds. */
const TEXT_TYPES = new Set([
  20, 1700, 17, 1082, 1083, 1114, 1184, 1186, 1266, 790,
  // their arrays
  1016, 1231, 1001, 1182, 1183, 1115, 1185, 1187, 1270, 791,
]);

/** node-postgres type parsers: the defaults, except the types above, which stay text. */
export const resultTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (TEXT_TYPES.has(oid)) return (v: string) => v;
    return pg.types.getTypeParser(oid, format as any);
  },
};

/** Every value as the server's text (what psql-describe expects). */
export const rawTypes = { getTypeParser: () => (v: string) => v };

export interface ExecOptions {
  database: string;
  /** statement_timeout for this request, in ms. */
  timeoutMs: number;
}

/** A connection lent to one request. `dirty()` marks session state to be cleared afterwards. */
export interface Session {
  client: pg.PoolClient;
  dirty(): void;
  endpoint: EndpointListRow & { port: number };
}

interface PoolEntry {
  /** What the pool was made for: a resumed compute on a new port gets a new pool. */
  key: string;
  pool: pg.Pool;
}

export interface ComputePoolOptions {
  /** Connections per endpoint and database. */
  size: number;
  /** An idle connection is closed after this, so it does not keep a compute from suspending. */
  idleMs: number;
  logger: Logger;
}

/** The executor's pools: one per endpoint and database, made on first use, closed by the stack. */
export class ComputePools {
  private readonly pools = new Map<string, PoolEntry>();
  /** The statement_timeout each pooled connection has now. */
  private readonly timeouts = new WeakMap<pg.ClientBase, number>();
  private closed = false;

  constructor(private readonly o: ComputePoolOptions) {}

  /** `access` is asked only for a new pool: it decrypts the endpoint's password. */
  pool(ep: EndpointListRow & { port: number }, access: () => { host: string; port: number; user: string; password: string }, database: string): pg.Pool {
    if (this.closed) throw new ApiError(503, 'shutting_down', 'the API is stopping');
    const id = `${ep.id}/${database}`;
    // A new port (a resume elsewhere) or password (a reset) means a new pool.
    const key = `${ep.port}:${ep.pg_password_enc}`;
    const have = this.pools.get(id);
    if (have?.key === key) return have.pool;
    if (have) void have.pool.end().catch(() => undefined);
    const pool = new pg.Pool({
      ...access(),
      database,
      max: this.o.size,
      idleTimeoutMillis: this.o.idleMs,
      connectionTimeoutMillis: 10_000,
      application_name: 'lampion-api',
      types: resultTypes,
    });
    // A compute that stops (suspend, reset) ends its idle connections: not an error of ours.
    pool.on('error', (err) => this.o.logger.debug({ err: err.message, endpoint: ep.id }, 'pooled connection closed by the compute'));
    this.pools.set(id, { key, pool });
    return pool;
  }

  /** Ends the pool of one database (before it is dropped: its idle sessions would hold it). */
  async forget(endpointId: string, database: string): Promise<void> {
    const id = `${endpointId}/${database}`;
    const have = this.pools.get(id);
    this.pools.delete(id);
    await have?.pool.end().catch(() => undefined);
  }

  timeoutOf(c: pg.ClientBase): number | undefined {
    return this.timeouts.get(c);
  }

  setTimeoutOf(c: pg.ClientBase, ms: number | undefined): void {
    if (ms === undefined) this.timeouts.delete(c);
    else this.timeouts.set(c, ms);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.pool.end().catch(() => undefined)));
  }
}

/** Marks the endpoint active for auto-suspend, at most every few seconds per endpoint. */
const TOUCH_EVERY_MS = 5_000;
const touchedAt = new Map<string, number>();
async function touch(deps: ApiDeps, endpointId: string): Promise<void> {
  const now = Date.now();
  if ((touchedAt.get(endpointId) ?? 0) > now - TOUCH_EVERY_MS) return;
  touchedAt.set(endpointId, now);
  if (touchedAt.size > 10_000) touchedAt.clear();
  await touchEndpoint(deps.db, endpointId);
}

/** An error from the database, answered through the SQLSTATE table. */
export class SqlError extends ApiError {
  constructor(
    readonly pgError: pg.DatabaseError,
    details: Record<string, unknown> = {},
  ) {
    const a = sqlErrorAnswer(pgError.code);
    super(a.status, a.code, pgError.message, { sqlstate: pgError.code, ...pgErrorDetails(pgError), ...details });
  }
}

export function isPgError(err: unknown): err is pg.DatabaseError {
  return err instanceof pg.DatabaseError || (typeof err === 'object' && err !== null && typeof (err as any).code === 'string' && (err as any).severity !== undefined);
}

/** What Postgres said besides the message (only the fields it set). */
export function pgErrorDetails(e: pg.DatabaseError): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (e.detail) out.detail = e.detail;
  if (e.hint) out.hint = e.hint;
  if (e.position) out.position = Number(e.position);
  if (e.schema) out.schema = e.schema;
  if (e.table) out.table = e.table;
  if (e.column) out.column = e.column;
  if (e.constraint) out.constraint = e.constraint;
  return out;
}

function connectFailure(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  // ENOENT: the socket file of a compute that stopped (a local compute is reached over its socket).
  return code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE' || isComputeGone(code) || /Connection terminated|timeout exceeded when trying to connect/.test(String((err as Error)?.message));
}

/** A compute of this host over its private socket, others over TCP (see ApiDeps.localComputeSocket). */
function executorAccess(deps: ApiDeps, ep: EndpointListRow & { port: number }) {
  const access = directUserAccess(deps, ep);
  const local = deps.localComputeSocket;
  return local && local.hostId === ep.host_id ? { ...access, host: local.socketDir(ep.id) } : access;
}

/**
 * The endpoint a console route works on. A running one may come from the cache (up to
 * LAMPION_API_CACHE_MS old): withSession looks again if it does not answer.
 */
export async function consoleEndpoint(deps: ApiDeps, auth: AuthContext, projectId: string, endpointId: string): Promise<EndpointListRow> {
  const key = `${auth.orgId}/${projectId}/${endpointId}`;
  const cached = deps.caches.runningEndpoints.get(key);
  if (cached) return cached;
  const ep = await requireEndpoint(deps, auth, projectId, endpointId);
  if (ep.status === 'running' && ep.port !== null) deps.caches.runningEndpoints.set(key, ep);
  return ep;
}

/**
 * Runs `fn` on a pooled connection of the endpoint's compute (woken first if suspended) as its
 * user role. A compute that went away between the wake and the connect (a suspend, a restart) is
 * woken again once. After `fn`, a transaction it left open is rolled back, and a session it
 * marked dirty is reset (DISCARD ALL), so the next request starts clean.
 */
export async function withSession<T>(deps: ApiDeps, auth: AuthContext, endpoint: EndpointListRow, o: ExecOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  let ep = endpoint;
  for (let attempt = 0; ; attempt++) {
    const running = await requireRunningCompute(deps, auth, ep);
    const pools = deps.computePools;
    let client: pg.PoolClient;
    try {
      client = await pools.pool(running, () => executorAccess(deps, running), o.database).connect();
    } catch (err) {
      if (isPgError(err) && err.code === '3D000') throw new SqlError(err);
      if (isPgError(err) && !isComputeGone(err.code) && !(attempt === 0 && err.code === '28P01')) throw new SqlError(err);
      if (attempt === 0 && (connectFailure(err) || (isPgError(err) && err.code === '28P01'))) {
        // A cached endpoint that went away (suspended, moved to another port, deleted).
        deps.caches.runningEndpoints.delete(`${auth.orgId}/${ep.project_id}/${ep.id}`);
        ep = await requireEndpoint(deps, auth, ep.project_id, ep.id);
        continue;
      }
      throw new ApiError(503, 'compute_unavailable', `could not connect to endpoint ${ep.id}: ${(err as Error).message}`, undefined, { 'Retry-After': '2' });
    }
    void touch(deps, ep.id).catch(() => undefined);
    let dirty = false;
    let broken = false;
    try {
      if (pools.timeoutOf(client) !== o.timeoutMs) {
        await client.query(`SET statement_timeout = ${Math.trunc(o.timeoutMs)}`);
        pools.setTimeoutOf(client, o.timeoutMs);
      }
      return await fn({ client, dirty: () => (dirty = true), endpoint: running });
    } catch (err) {
      if (!isPgError(err)) {
        if (!(err instanceof ApiError)) broken = true;
        throw err;
      }
      throw new SqlError(err);
    } finally {
      if (!broken) {
        try {
          if (client.getTransactionStatus() !== 'I') await client.query('ROLLBACK');
          if (dirty) {
            await client.query('DISCARD ALL');
            pools.setTimeoutOf(client, undefined);
          }
        } catch {
          broken = true;
        }
      }
      client.release(broken);
    }
  }
}

/** Rows of a statement built by a domain/pgsql builder (bigint and numeric as text). */
export async function queryRows<T = Record<string, unknown>>(s: Session, st: Statement): Promise<T[]> {
  const r = await s.client.query({ text: st.text, values: st.values as any[] | undefined, types: resultTypes as any });
  return r.rows as T[];
}

/** Runs statements in one transaction: all or nothing. */
export async function inTransaction<T>(s: Session, fn: () => Promise<T>): Promise<T> {
  await s.client.query('BEGIN');
  try {
    const r = await fn();
    await s.client.query('COMMIT');
    return r;
  } catch (err) {
    await s.client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The default options of a console route: the request's database, the default timeout. */
export function consoleOptions(deps: ApiDeps, database = 'postgres'): ExecOptions {
  return { database, timeoutMs: deps.config.sql.timeoutMs };
}

export interface StatementResult {
  command: string;
  columns: string[];
  /** Postgres type of each column (format_type of its OID). */
  column_types: string[];
  rows: Record<string, unknown>[];
  row_count: number | null;
  truncated: boolean;
  duration: number;
}

const BUILTIN_TYPE_NAMES: Record<number, string> = {
  16: 'boolean', 17: 'bytea', 18: '"char"', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 24: 'regproc',
  25: 'text', 26: 'oid', 114: 'json', 142: 'xml', 700: 'real', 701: 'double precision', 790: 'money', 1042: 'character',
  1043: 'character varying', 1082: 'date', 1083: 'time without time zone', 1114: 'timestamp without time zone',
  1184: 'timestamp with time zone', 1186: 'interval', 1266: 'time with time zone', 1560: 'bit', 1562: 'bit varying',
  1700: 'numeric', 2205: 'regclass', 2950: 'uuid', 3802: 'jsonb', 3220: 'pg_lsn', 869: 'inet', 650: 'cidr', 829: 'macaddr',
  1000: 'boolean[]', 1005: 'smallint[]', 1007: 'integer[]', 1016: 'bigint[]', 1009: 'text[]', 1015: 'character varying[]',
  1021: 'real[]', 1022: 'double precision[]', 1231: 'numeric[]', 2951: 'uuid[]', 3807: 'jsonb[]', 199: 'json[]', 2278: 'void',
  2249: 'record', 705: 'unknown',
};

/** Names for the result's type OIDs: built-ins from the table, others asked of the server once. */
async function typeNames(client: pg.ClientBase, oids: number[]): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const unknown: number[] = [];
  for (const oid of oids) {
    const n = BUILTIN_TYPE_NAMES[oid];
    if (n) names.set(oid, n);
    else if (!unknown.includes(oid)) unknown.push(oid);
  }
  if (unknown.length) {
    const r = await client.query<{ oid: number; name: string }>({ text: 'SELECT oid::int AS oid, format_type(oid, NULL) AS name FROM pg_type WHERE oid = ANY($1::oid[])', values: [unknown], types: rawTypes as any });
    for (const row of r.rows) names.set(Number(row.oid), row.name);
  }
  return names;
}

/** Distinct keys for the row objects: a repeated column name gets _2, _3, … */
function distinctNames(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((n) => {
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 ? n : `${n}_${k}`;
  });
}

/** The count a command tag ends with (INSERT 0 5 → 5, SELECT 3 → 3); the rows read when it has none. */
function rowCount(tag: string | undefined, read: number): number {
  const m = /(\d+)$/.exec(tag ?? '');
  return m ? Number(m[1]) : read;
}

/**
 * One statement in one round trip (see BoundedQuery): at most `maxRows` rows are read from the
 * server (one more, to know whether there were more). Returns after the server's ReadyForQuery,
 * so the session's transaction status is current.
 */
export async function runStatement(client: pg.ClientBase, text: string, values: unknown[] | undefined, maxRows: number): Promise<StatementResult> {
  const t0 = performance.now();
  const q = new BoundedQuery(text, values, maxRows, resultTypes);
  client.query(q);
  const result = await q.done;
  let rows = result.rows;
  const fields = result.fields;
  const truncated = rows.length > maxRows;
  if (truncated) rows = rows.slice(0, maxRows);
  const keys = distinctNames(fields.map((f) => f.name));
  const types = fields.length ? await typeNames(client, fields.map((f) => f.dataTypeID)) : new Map();
  const tag = result.commandTag ?? (fields.length ? 'SELECT' : '');
  return {
    // INSERT 0 5 → INSERT; SELECT 5 → SELECT; CREATE TABLE stays whole.
    command: tag.replace(/( \d+)+$/, ''),
    columns: keys,
    column_types: fields.map((f) => types.get(f.dataTypeID) ?? String(f.dataTypeID)),
    rows: rows.map((r) => Object.fromEntries(keys.map((k, i) => [k, r[i]]))),
    row_count: truncated ? null : rowCount(result.commandTag, rows.length),
    truncated,
    duration: Math.round((performance.now() - t0) * 100) / 100,
  };
}
