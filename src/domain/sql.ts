import type * as PgQuery from 'libpg-query';

/**
 * Seed scripts are checked with the real PostgreSQL 18 grammar (libpg-query, WASM build), so
 * what passes here is what the server will accept syntactically; nothing here touches a database.
 *
 * Positions follow Postgres' `cursorpos`: 1-based and counted in characters (Unicode code points),
 * not bytes and not UTF-16 code units, so an error reported here carries the same position as the
 * error the server would raise when the seed runs.
 */
export type SqlSyntaxError = {
  ok: false;
  message: string;
  /** 1-based code-point offset into the script; script length + 1 means "at end of input". */
  position: number;
  /** 1-based. */
  line: number;
  /** 1-based, in code points from the start of the line. */
  column: number;
};

export type SqlValidation = { ok: true; statements: number } | SqlSyntaxError;

/** Thrown by {@link splitStatements}; carries the same details {@link validateSql} returns. */
export class SqlScriptError extends Error {
  readonly position: number;
  readonly line: number;
  readonly column: number;
  constructor(detail: SqlSyntaxError) {
    super(`${detail.message} (line ${detail.line}, column ${detail.column})`);
    this.name = 'SqlScriptError';
    this.position = detail.position;
    this.line = detail.line;
    this.column = detail.column;
  }
}

type RawStmt = NonNullable<PgQuery.ParseResult['stmts']>[number];

let parser: Promise<typeof PgQuery> | undefined;

// Loaded lazily: requiring libpg-query instantiates a multi-megabyte WASM module, which only the
// processes that actually validate seeds should pay for.
function loadParser(): Promise<typeof PgQuery> {
  parser ??= import('libpg-query').then(async (mod) => {
    await mod.loadModule();
    return mod;
  });
  return parser;
}

export async function validateSql(sql: string): Promise<SqlValidation> {
  if (sql.trim() === '') return failAt(sql, 1, 'script is empty');
  const parsed = await parseScript(sql);
  if (!parsed.ok) return parsed;
  if (parsed.stmts.length === 0) return failAt(sql, 1, 'script contains no SQL statements, only comments');
  return { ok: true, statements: parsed.stmts.length };
}

/**
 * The statements of a script as the parser delimits them: without the terminating semicolon and
 * without surrounding whitespace or comments between statements; comments inside a statement are
 * kept, so append nothing to a statement that may end in a `--` comment. A script without
 * statements gives `[]`; a script {@link validateSql} rejects for any other reason throws
 * {@link SqlScriptError}.
 */
export async function splitStatements(sql: string): Promise<string[]> {
  return (await statementTrees(sql)).map((s) => s.text);
}

/**
 * The statements of a script with their parse trees (libpg-query's JSON, `{ AlterTableStmt: … }`),
 * as {@link splitStatements} delimits them; a script it rejects throws {@link SqlScriptError}.
 */
export async function statementTrees(sql: string): Promise<{ text: string; node: Record<string, unknown> }[]> {
  if (sql.trim() === '') return [];
  const parsed = await parseScript(sql);
  if (!parsed.ok) throw new SqlScriptError(parsed);
  const toIndex = byteToIndexCursor(sql);
  return parsed.stmts.map((s) => {
    // Protobuf JSON omits zero values: no location means offset 0, no length means "to the end".
    const startByte = s.stmt_location ?? 0;
    const end = s.stmt_len ? toIndex(startByte + s.stmt_len) : sql.length;
    return { text: sql.slice(toIndex(startByte), end).trim(), node: (s.stmt ?? {}) as Record<string, unknown> };
  });
}

/** Where a script runs, for the messages that say what it may not contain. */
export type ScriptPlace = 'seeds' | 'api';

const PLACE_NAME: Record<ScriptPlace, string> = { seeds: 'in seeds', api: 'over the SQL API' };

/** One statement of a script the SQL API runs. */
export interface ScriptStatement {
  text: string;
  /** 1-based code-point offset of the statement in the script (for error positions). */
  position: number;
  /** The parse node's name, e.g. "SelectStmt", "CreateStmt". */
  kind: string;
  /**
   * A plain read that leaves nothing behind in the session: a SELECT without INTO or row locks,
   * SHOW, VALUES, EXPLAIN without ANALYZE, and no call of a function known to change session
   * state. A pooled connection is reused as it is after a request of only these.
   */
  leavesNoState: boolean;
}

/** Functions a SELECT may call that change the session (settings, advisory locks, large objects, …). */
const SESSION_FUNCTIONS = /^(set_config|pg_advisory_lock(_shared)?|pg_try_advisory_lock(_shared)?|pg_advisory_unlock(_shared|_all)?|lo_\w+|dblink\w*|pg_notify|setseed|nextval|setval)$/;

function leavesNoState(stmt: unknown): boolean {
  const node = stmt as Record<string, any> | undefined;
  if (!node) return false;
  const [kind] = Object.keys(node);
  const body = node[kind];
  if (kind === 'VariableShowStmt') return true;
  if (kind === 'ExplainStmt') {
    const analyse = (body.options ?? []).some((o: any) => o?.DefElem?.defname === 'analyze' || o?.DefElem?.defname === 'analyse');
    return !analyse && leavesNoState(body.query);
  }
  if (kind !== 'SelectStmt') return false;
  if (body.intoClause || body.lockingClause) return false;
  let clean = true;
  const walk = (v: unknown): void => {
    if (!clean || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    const call = o.FuncCall as { funcname?: { String?: { sval?: string } }[] } | undefined;
    if (call) {
      const name = call.funcname?.[call.funcname.length - 1]?.String?.sval ?? '';
      if (SESSION_FUNCTIONS.test(name)) clean = false;
    }
    // A SELECT ... FOR UPDATE inside a subquery or CTE, or a data-modifying CTE.
    if (o.lockingClause || o.InsertStmt || o.UpdateStmt || o.DeleteStmt || o.MergeStmt) clean = false;
    for (const x of Object.values(o)) walk(x);
  };
  walk(body);
  return clean;
}

/**
 * The statements of a script for the SQL API, as the parser delimits them (see
 * {@link splitStatements}), each with its kind and where it starts; a syntax error, or COPY to or
 * from the client, is a {@link SqlSyntaxError}.
 */
export async function scriptStatements(sql: string): Promise<{ ok: true; statements: ScriptStatement[] } | SqlSyntaxError> {
  if (sql.trim() === '') return failAt(sql, 1, 'query is empty');
  const parsed = await parseScript(sql, 'api');
  if (!parsed.ok) return parsed;
  if (parsed.stmts.length === 0) return failAt(sql, 1, 'query contains no SQL statements, only comments');
  const toIndex = byteToIndexCursor(sql);
  return {
    ok: true,
    statements: parsed.stmts.map((s) => {
      const startByte = s.stmt_location ?? 0;
      let start = toIndex(startByte);
      const end = s.stmt_len ? toIndex(startByte + s.stmt_len) : sql.length;
      const raw = sql.slice(start, end);
      start += raw.length - raw.trimStart().length;
      return {
        text: raw.trim(),
        position: codePointCount(sql.slice(0, start)) + 1,
        kind: Object.keys((s.stmt ?? {}) as object)[0] ?? 'unknown',
        leavesNoState: leavesNoState(s.stmt),
      };
    }),
  };
}

async function parseScript(sql: string, place: ScriptPlace = 'seeds'): Promise<{ ok: true; stmts: RawStmt[] } | SqlSyntaxError> {
  const bad = checkText(sql);
  if (bad) return bad;
  const pg = await loadParser();
  let stmts: RawStmt[];
  try {
    stmts = pg.parseSync(sql).stmts ?? [];
  } catch (err) {
    if (!pg.hasSqlDetails(err)) throw err;
    return explainSyntaxError(pg, sql, err.message, (err.sqlDetails?.cursorPosition ?? 0) + 1, place);
  }
  const copy = stmts.find((st) => isCopyStdio(st, place));
  if (copy) return failAtByte(sql, copy.stmt_location ?? 0, copyStdioMessage(place));
  return { ok: true, stmts };
}

function copyStdioMessage(place: ScriptPlace): string {
  return place === 'seeds'
    ? 'COPY ... FROM stdin is not supported in seeds: its data can only be streamed by psql; use INSERT statements (pg_dump --inserts) instead'
    : 'COPY ... FROM stdin and COPY ... TO stdout are not supported over the SQL API: nothing streams their data; use INSERT statements, or SELECT for output';
}

// Seeds run statement by statement over the wire protocol, where nobody supplies COPY data.
// Over the API, nobody reads COPY output either.
function isCopyStdio(s: RawStmt, place?: unknown): boolean {
  const stmt = s.stmt as { CopyStmt?: { is_from?: boolean; filename?: string; is_program?: boolean } } | undefined;
  const copy = stmt?.CopyStmt;
  if (!copy || copy.filename || copy.is_program) return false;
  return !!copy.is_from || place === 'api';
}

/** Rejects what the WASM boundary would silently mangle before Postgres ever sees it. */
function checkText(sql: string): SqlSyntaxError | undefined {
  // The parser takes a C string: everything after a NUL would vanish from validation yet still
  // reach the server, which rejects NUL anyway.
  const nul = sql.indexOf('\0');
  if (nul >= 0) return failAtIndex(sql, nul, 'script contains a NUL character, which PostgreSQL does not accept');
  // Emscripten's UTF-8 encoder pairs an unpaired surrogate with whatever follows, which would
  // shift every later offset.
  const lone = /\p{Cs}/u.exec(sql);
  if (lone) return failAtIndex(sql, lone.index, 'script is not valid Unicode (unpaired UTF-16 surrogate)');
  return undefined;
}

/** Replaces the grammar's generic complaint where we know what the author actually wrote. */
function explainSyntaxError(pg: typeof PgQuery, sql: string, message: string, position: number, place: ScriptPlace): SqlSyntaxError {
  const idx = codePointsToIndex(sql, position - 1);
  // Checked first because COPY data rows may themselves start with a backslash (`\N` is NULL).
  const copy = copyFromStdinBefore(pg, sql, idx, place);
  if (copy) return copy;
  if (sql[idx] === '\\' && message.startsWith('syntax error at or near "\\"')) {
    const command = /^\\\S*/.exec(sql.slice(idx))?.[0] ?? '\\';
    return failAt(
      sql,
      position,
      place === 'seeds'
        ? `psql meta-command "${command}" is not supported in seeds: seeds are plain SQL run by the server, not by psql`
        : `psql meta-command "${command}" inside SQL: send meta-commands on their own (one per line, each line starting with a backslash)`,
    );
  }
  if (position === 1 && sql.startsWith('\uFEFF')) {
    return failAt(sql, 1, 'script starts with a byte order mark (U+FEFF); save it as UTF-8 without BOM');
  }
  return failAt(sql, position, message);
}

/**
 * pg_dump's default output puts COPY data right after `COPY ... FROM stdin;`, and the grammar then
 * trips over the first data row, which says nothing useful on its own. The statement that failed
 * starts after the last semicolon before the error, so if the script up to that semicolon ends in
 * such a COPY, that is the real problem.
 */
function copyFromStdinBefore(pg: typeof PgQuery, sql: string, errorIndex: number, place: ScriptPlace): SqlSyntaxError | undefined {
  const before = sql.slice(0, errorIndex);
  if (before.trim() === '') return undefined;
  try {
    // The parser's own lexer got through this prefix, so scanning it is not expected to fail.
    const semicolons = (pg.scanSync(before).tokens ?? []).filter((t) => t.text === ';');
    const last = semicolons[semicolons.length - 1];
    if (!last) return undefined;
    const prior = pg.parseSync(before.slice(0, byteToIndexCursor(before)(last.end))).stmts ?? [];
    const stmt = prior[prior.length - 1];
    if (stmt && isCopyStdio(stmt)) return failAtByte(sql, stmt.stmt_location ?? 0, copyStdioMessage(place));
  } catch {
    // The prefix has a problem of its own; the original error is the one to report.
  }
  return undefined;
}

function failAt(sql: string, position: number, message: string): SqlSyntaxError {
  let line = 1;
  let column = 1;
  let seen = 0;
  for (const ch of sql) {
    if (++seen >= position) break;
    if (ch === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return { ok: false, message, position, line, column };
}

function failAtIndex(sql: string, index: number, message: string): SqlSyntaxError {
  return failAt(sql, codePointCount(sql.slice(0, index)) + 1, message);
}

function failAtByte(sql: string, byteOffset: number, message: string): SqlSyntaxError {
  return failAtIndex(sql, byteToIndexCursor(sql)(byteOffset), message);
}

function codePointCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** UTF-16 index of the code point with the given 0-based ordinal (clamped to the end). */
function codePointsToIndex(s: string, codePoints: number): number {
  let idx = 0;
  for (let n = 0; n < codePoints && idx < s.length; n++) idx += s.codePointAt(idx)! > 0xffff ? 2 : 1;
  return idx;
}

/**
 * Maps the parser's UTF-8 byte offsets to string indices. Statement offsets arrive in ascending
 * order, so one forward cursor keeps splitting linear in the script size.
 */
function byteToIndexCursor(s: string): (byteOffset: number) => number {
  let byte = 0;
  let idx = 0;
  return (target) => {
    if (target < byte) {
      byte = 0;
      idx = 0;
    }
    while (byte < target && idx < s.length) {
      const cp = s.codePointAt(idx)!;
      byte += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      idx += cp > 0xffff ? 2 : 1;
    }
    return idx;
  };
}

/** The parse tree of a text (the statements' nodes), or undefined when it does not parse. */
export async function parseTree(sql: string): Promise<unknown[] | undefined> {
  if (checkText(sql)) return undefined;
  const pg = await loadParser();
  try {
    return (pg.parseSync(sql).stmts ?? []).map((s) => s.stmt);
  } catch (err) {
    if (pg.hasSqlDetails(err)) return undefined;
    throw err;
  }
}
