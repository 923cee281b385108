import type pg from 'pg';
import { describe, describeDataToString } from 'psql-describe';
import { ApiError } from './errors';
import { isPgError, pgErrorDetails, rawTypes, runStatement, Session, SqlError, StatementResult } from './executor';
import { scriptStatements, ScriptStatement } from '../domain/sql';
import { TtlCache } from './ttlCache';

/**
 * What POST …/sql runs: a script of SQL statements (split by the Postgres parser, run in order on
 * one session, as psql would without ON_ERROR_STOP off: the first error stops it), or psql
 * meta-commands (`\d`, `\dt+ t`, `\l`, …), one per line, answered by psql-describe (psql's own
 * describe.c, ported) with the same queries and the same text psql prints.
 */

export interface SqlRequest {
  query: string;
  params?: unknown[];
  maxRows: number;
  database: string;
}

export interface MetaResult {
  command: string;
  /** What psql prints for it. */
  output: string;
  tables: { title: string | null; columns: string[]; rows: string[][]; footers: string[] }[];
  duration: number;
}

export type SqlAnswer = (StatementResult & { statement?: undefined }) | { results: (StatementResult | MetaResult)[]; duration: number } | MetaResult;

/** A request whose every line is a backslash command. */
export function metaCommands(query: string): string[] | undefined {
  const trimmed = query.trim();
  if (!trimmed.startsWith('\\')) return undefined;
  const lines = trimmed.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const bad = lines.findIndex((l) => !l.startsWith('\\'));
  if (bad >= 0) {
    throw new ApiError(422, 'invalid_meta_command', `line ${bad + 1} is not a meta-command: send meta-commands on their own, one per line, and SQL in a request of its own`);
  }
  return lines;
}

/**
 * Parses of recent scripts: a dashboard or a client sends the same text again and again, and the
 * parse is a large part of a small query's cost. Parsing is a pure function of the text.
 */
const parses = new TtlCache<Awaited<ReturnType<typeof scriptStatements>>>(10 * 60_000, 500);
const CACHED_PARSE_MAX_CHARS = 8192;

async function parsedScript(text: string): ReturnType<typeof scriptStatements> {
  if (text.length > CACHED_PARSE_MAX_CHARS) return scriptStatements(text);
  const have = parses.get(text);
  if (have) return have;
  const parsed = await scriptStatements(text);
  parses.set(text, parsed);
  return parsed;
}

/** Parses the request before anything runs: a syntax error anywhere means nothing ran. */
export async function planSql(req: SqlRequest): Promise<{ kind: 'meta'; commands: string[] } | { kind: 'sql'; statements: ScriptStatement[] }> {
  const commands = metaCommands(req.query);
  if (commands) {
    if (req.params?.length) throw new ApiError(422, 'validation_failed', 'params apply to a single SQL statement, not to meta-commands');
    return { kind: 'meta', commands };
  }
  const parsed = await parsedScript(req.query);
  if (!parsed.ok) {
    throw new ApiError(422, 'syntax_error', parsed.message, { position: parsed.position, line: parsed.line, column: parsed.column, statements_run: 0 });
  }
  if (req.params?.length && parsed.statements.length > 1) {
    throw new ApiError(422, 'validation_failed', `params apply to a single statement; the query has ${parsed.statements.length}`);
  }
  return { kind: 'sql', statements: parsed.statements };
}

/** A JSON parameter as node-postgres sends it: objects and arrays as JSON text. */
function paramValue(v: unknown): unknown {
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return v;
}

export async function runSql(session: Session, req: SqlRequest, plan: Awaited<ReturnType<typeof planSql>>): Promise<SqlAnswer> {
  const t0 = performance.now();
  if (plan.kind === 'meta') {
    const results: MetaResult[] = [];
    for (const cmd of plan.commands) results.push(await runMeta(session.client, cmd, req.database));
    return results.length === 1 ? results[0] : { results, duration: ms(t0) };
  }
  if (plan.statements.some((s) => !s.leavesNoState)) session.dirty();
  const results: StatementResult[] = [];
  for (const [i, st] of plan.statements.entries()) {
    try {
      results.push(await runStatement(session.client, st.text, req.params?.map(paramValue), req.maxRows));
    } catch (err) {
      if (!isPgError(err)) throw err;
      const d = pgErrorDetails(err);
      throw new SqlError(err, {
        // Where in the whole query, as the parser counts (code points, 1-based).
        ...(d.position ? { position: st.position + Number(d.position) - 1, statement_position: d.position } : {}),
        statement: i + 1,
        statement_text: st.text.length > 500 ? `${st.text.slice(0, 500)}…` : st.text,
        statements_run: i,
        results,
      });
    }
  }
  return results.length === 1 ? results[0] : { results, duration: ms(t0) };
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

interface DescribeTable {
  title?: string | null;
  ncolumns: number;
  headers: string[];
  cells: string[];
  footers?: string[] | null;
}

async function runMeta(client: pg.ClientBase, command: string, database: string): Promise<MetaResult> {
  const t0 = performance.now();
  const items: (string | DescribeTable)[] = [];
  let queryError: unknown;
  const run = describe(
    command,
    database,
    async (sql: string) => {
      try {
        return await client.query({ text: sql, rowMode: 'array', types: rawTypes as any });
      } catch (err) {
        queryError ??= err;
        throw err;
      }
    },
    (item: string | Record<string, any>) => items.push(item as string | DescribeTable),
    false,
  );
  let ok: boolean | null;
  try {
    ok = await run.promise;
  } catch (err) {
    if (isPgError(queryError)) throw new SqlError(queryError, { command });
    throw new ApiError(422, 'invalid_meta_command', `${command}: ${(err as Error).message}`);
  }
  if (isPgError(queryError)) throw new SqlError(queryError, { command });
  const output = items.map((i) => describeDataToString(i as any)).join('\n');
  if (ok === false) throw new ApiError(422, 'invalid_meta_command', output.trim() || `${command} failed`, { command });
  return {
    command,
    output,
    tables: items
      .filter((i): i is DescribeTable => typeof i === 'object')
      .map((t) => ({
        title: t.title ?? null,
        columns: t.headers,
        rows: Array.from({ length: Math.ceil(t.cells.length / Math.max(1, t.ncolumns)) }, (_, r) => t.cells.slice(r * t.ncolumns, (r + 1) * t.ncolumns)),
        footers: t.footers ?? [],
      })),
    duration: ms(t0),
  };
}
