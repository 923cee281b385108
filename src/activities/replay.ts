import { Client } from 'pg';
import { statementTrees } from '../domain/sql';
import { parameterCount, parameterSources, readExplain, REPLAYABLE_KINDS, verdict, type ReplayThresholds, type SideMeasure, type Verdict } from '../domain/replay';
import { quoteIdent } from '../domain/pgsql/identifiers';
import { USER_ROLE } from '../domain/roles';

/** A compute reached as the user role (loopback TCP, the endpoint's password). */
export interface UserConn {
  port: number;
  password: string;
  database: string;
}

export interface TopStatement {
  query: string;
  calls: number;
  totalMs: number;
}

export type ReplayedQuery =
  | ({ query: string; status: Verdict['status'] } & Omit<Verdict, 'status' | 'basis'>)
  | { query: string; status: 'skipped'; reason: string };

export interface ReplayOptions {
  /** Timed repetitions per side, after one warm-up each, alternating source and target. */
  repetitions: number;
  statementTimeoutMs: number;
  thresholds: ReplayThresholds;
}

async function connect(c: UserConn): Promise<Client> {
  const client = new Client({ host: '127.0.0.1', port: c.port, user: USER_ROLE, password: c.password, database: c.database, application_name: 'lampion-replay' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Names the replay's own statements' output, so the source's top list leaves them out (a comment would be stripped). */
const OWN_TAG = 'lampion_replay_sample';

/** Session statements and the replay's own EXPLAINs are not workload. */
const NOT_WORKLOAD = /^\s*(begin|commit|rollback|start\s+transaction|savepoint|release|set\s|reset\s|show\s|discard\s|explain\s|deallocate\s|prepare\s|execute\s|listen\s|unlisten\s)/i;

/**
 * The source's top statements by total execution time, from pg_stat_statements: those the
 * user's role ran in this database (never the platform's own sessions).
 */
export async function topStatements(conn: UserConn, limit: number): Promise<TopStatement[]> {
  const c = await connect(conn);
  try {
    const r = await c.query<{ query: string; calls: string; total: number }>(
      `SELECT query, calls::text, total_exec_time AS total
         FROM pg_stat_statements
        WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND toplevel AND query !~* $2 AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE $4
        ORDER BY total_exec_time DESC
        LIMIT $3`,
      [USER_ROLE, NOT_WORKLOAD.source, limit, `%${OWN_TAG}%`],
    );
    return r.rows.map((x) => ({ query: x.query, calls: Number(x.calls), totalMs: Number(x.total) }));
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A value for each `$n` from the source's data; a reason when one cannot be found. */
async function sampleParameters(c: Client, tree: unknown): Promise<{ values: (string | null)[] } | { reason: string }> {
  const count = parameterCount(tree);
  if (count === 0) return { values: [] };
  const sources = parameterSources(tree);
  const values: (string | null)[] = [];
  for (let n = 1; n <= count; n++) {
    const src = sources.get(n);
    if (!src) return { reason: `parameter $${n} is not compared with a column, so no representative value can be sampled` };
    if (src.kind === 'limit') {
      values.push('100');
      continue;
    }
    if (src.kind === 'offset') {
      values.push('0');
      continue;
    }
    let value: string | null | undefined;
    for (const t of src.tables) {
      const rel = `${t.schema ? `${quoteIdent(t.schema)}.` : ''}${quoteIdent(t.name)}`;
      const col = quoteIdent(src.column);
      // A row among the first thousand: representative without reading a big table.
      const r = await c
        .query<{ lampion_replay_sample: string | null }>(
          `SELECT (SELECT ${col} FROM ${rel} WHERE ${col} IS NOT NULL OFFSET floor(random() * (SELECT count(*) FROM (SELECT 1 FROM ${rel} WHERE ${col} IS NOT NULL LIMIT 1000) x)) LIMIT 1)::text AS ${OWN_TAG}`,
        )
        .catch(() => undefined);
      if (r) {
        value = r.rows[0]?.lampion_replay_sample ?? null;
        break;
      }
    }
    if (value === undefined) return { reason: `parameter $${n}: column ${src.column} not found in ${src.tables.map((t) => t.name).join(', ') || 'the statement'}` };
    if (value === null) return { reason: `parameter $${n}: ${src.column} has no values on the source to sample` };
    values.push(value);
  }
  return { values };
}

async function explainOnce(c: Client, query: string, values: (string | null)[], timeoutMs: number) {
  await c.query('BEGIN');
  try {
    await c.query(`SET LOCAL statement_timeout = ${Math.floor(timeoutMs)}`);
    const r = await c.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${query}`, values);
    return readExplain(r.rows[0]['QUERY PLAN']);
  } finally {
    // Nothing the statement wrote survives.
    await c.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * One statement on both sides under the same conditions: parameters sampled once from the
 * source, one warm-up run each, then timed runs alternating source and target, each in a
 * transaction that is rolled back, with a statement timeout.
 */
export async function replayStatement(source: UserConn, target: UserConn, query: string, o: ReplayOptions): Promise<ReplayedQuery> {
  let trees: Awaited<ReturnType<typeof statementTrees>>;
  try {
    trees = await statementTrees(query);
  } catch (err) {
    return { query, status: 'skipped', reason: `cannot be parsed: ${(err as Error).message}` };
  }
  if (trees.length !== 1) return { query, status: 'skipped', reason: 'not a single statement' };
  const kind = Object.keys(trees[0].node)[0] ?? 'unknown';
  if (!REPLAYABLE_KINDS.has(kind)) return { query, status: 'skipped', reason: `${kind} is not replayable: only SELECT, INSERT, UPDATE, DELETE and MERGE run under EXPLAIN ANALYZE in a rolled-back transaction` };
  const [s, t] = [await connect(source), await connect(target)];
  try {
    const params = await sampleParameters(s, trees[0].node);
    if ('reason' in params) return { query, status: 'skipped', reason: params.reason };
    const side = (): SideMeasure => ({ timesMs: [], buffers: [], nodes: [] });
    let [ms, mt] = [side(), side()];
    const run = async (c: Client, m: SideMeasure | undefined, which: string) => {
      try {
        const r = await explainOnce(c, query, params.values, o.statementTimeoutMs);
        if (m) {
          m.timesMs.push(r.timeMs);
          m.buffers.push(r.buffers);
          m.nodes = r.nodes;
        }
      } catch (err) {
        throw new Error(`fails on the ${which}: ${(err as Error).message}`);
      }
    };
    const round = async () => {
      for (let i = 0; i < o.repetitions; i++) {
        // Alternating which side goes first, so neither always runs on the warmer machine.
        if (i % 2 === 0) {
          await run(s, ms, 'source');
          await run(t, mt, 'target');
        } else {
          await run(t, mt, 'target');
          await run(s, ms, 'source');
        }
      }
    };
    let v: Verdict;
    try {
      await run(s, undefined, 'source');
      await run(t, undefined, 'target');
      await round();
      v = verdict(ms, mt, o.thresholds);
      if (v.basis === 'time') {
        // Timings alone decided: a second round must say the same, or it was the machine.
        const first = v;
        [ms, mt] = [side(), side()];
        await round();
        const again = verdict(ms, mt, o.thresholds);
        v = again.status === first.status ? again : { ...again, status: 'stable', basis: 'none', reason: `${again.reason}; a first round said ${first.status} (mean ${first.sourceMeanMs} → ${first.targetMeanMs} ms), the second did not repeat it` };
      }
    } catch (err) {
      return { query, status: 'skipped', reason: (err as Error).message };
    }
    const { basis: _basis, ...shown } = v;
    return { query, ...shown };
  } finally {
    await Promise.all([s.end().catch(() => undefined), t.end().catch(() => undefined)]);
  }
}
