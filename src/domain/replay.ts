/**
 * Query replay verdicts: a statement timed on two branches under the same conditions, and its
 * plans and shared-buffer counts compared, which — unlike timings — do not move with the load of
 * the machine. Pure: plans in, verdicts out.
 */

export interface ReplayThresholds {
  /** A change of mean execution time counts from this ratio (and its inverse) on… */
  timeRatio: number;
  /** …when the means also differ by at least this much (sub-millisecond noise is ignored)… */
  minTimeDeltaMs: number;
  /** Shared buffers (hit + read) per execution: a change counts from this ratio… */
  bufferRatio: number;
  /** …and at least this many buffers. */
  minBufferDelta: number;
}

export const DEFAULT_REPLAY_THRESHOLDS: ReplayThresholds = { timeRatio: 1.5, minTimeDeltaMs: 1, bufferRatio: 2, minBufferDelta: 32 };

/** One side's measurements of one statement: every timed repetition's EXPLAIN ANALYZE. */
export interface SideMeasure {
  /** Execution Time of each timed repetition, ms. */
  timesMs: number[];
  /** Shared buffers (hit + read) of each timed repetition. */
  buffers: number[];
  /** The plan's nodes, e.g. "Index Scan using orders_customer_idx on orders". */
  nodes: string[];
}

export type ReplayStatus = 'regression' | 'improvement' | 'stable';

export interface Verdict {
  status: ReplayStatus;
  sourceMeanMs: number;
  targetMeanMs: number;
  ratio: number;
  sourceBuffers: number;
  targetBuffers: number;
  planChanged: boolean;
  /** What decided a regression or improvement: buffers (stable), or timings alone. */
  basis: 'buffers' | 'time' | 'none';
  reason: string;
}

type PlanNode = Record<string, any>;

/** A plan node as people name it: its type, index and relation. */
function nodeName(n: PlanNode): string {
  let s = n['Node Type'] as string;
  if (n['Node Type'] === 'Aggregate' && n.Strategy) s = `${n.Strategy === 'Plain' ? '' : `${n.Strategy} `}Aggregate`;
  if (n['Index Name']) s += ` using ${n['Index Name']}`;
  if (n['Relation Name']) s += ` on ${n['Relation Name']}`;
  return s;
}

/** EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)'s answer as a side's measure of one run. */
export function readExplain(json: unknown): { timeMs: number; buffers: number; nodes: string[] } {
  const top = (Array.isArray(json) ? json[0] : json) as PlanNode;
  const plan = top?.Plan as PlanNode | undefined;
  if (!plan) throw new Error('EXPLAIN returned no plan');
  const nodes: string[] = [];
  const walk = (n: PlanNode) => {
    nodes.push(nodeName(n));
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(plan);
  // A node's buffer counts include its children's: the top node's are the statement's.
  const buffers = Number(plan['Shared Hit Blocks'] ?? 0) + Number(plan['Shared Read Blocks'] ?? 0);
  return { timeMs: Number(top['Execution Time'] ?? plan['Actual Total Time'] ?? 0), buffers, nodes };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : 0;
};
const fmt = (n: number) => n.toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1));

/** What changed between two plans, in words: scans replaced, nodes added or gone. */
export function planChange(source: string[], target: string[]): string | undefined {
  if (source.join('\n') === target.join('\n')) return undefined;
  const scans = (ns: string[]) => ns.filter((n) => / (on|using) /.test(n));
  const gone = scans(source).filter((n) => !target.includes(n));
  const added = scans(target).filter((n) => !source.includes(n));
  if (gone.length || added.length) {
    if (gone.length && added.length) return `${added.join(', ')} replaced ${gone.join(', ')}`;
    return added.length ? `plan adds ${added.join(', ')}` : `plan no longer has ${gone.join(', ')}`;
  }
  return `plan changed: ${source.join(' → ')} became ${target.join(' → ')}`;
}

/**
 * The verdict on one statement. Buffers and plans decide when they changed beyond the
 * thresholds; time decides alone only when the two sides' timed runs do not overlap at all (every
 * target run slower than every source run, or faster), the ratio and the absolute difference both
 * past their thresholds — so a noisy machine makes "stable", never a false regression.
 */
export function verdict(source: SideMeasure, target: SideMeasure, t: ReplayThresholds = DEFAULT_REPLAY_THRESHOLDS): Verdict {
  const [sMean, tMean] = [mean(source.timesMs), mean(target.timesMs)];
  const [sBuf, tBuf] = [median(source.buffers), median(target.buffers)];
  const ratio = sMean > 0 ? tMean / sMean : tMean > 0 ? Infinity : 1;
  const bufRatio = (tBuf + 1) / (sBuf + 1);
  const change = planChange(source.nodes, target.nodes);
  const bufUp = bufRatio >= t.bufferRatio && tBuf - sBuf >= t.minBufferDelta;
  const bufDown = 1 / bufRatio >= t.bufferRatio && sBuf - tBuf >= t.minBufferDelta;
  const apart = (a: number[], b: number[]) => a.length > 0 && b.length > 0 && Math.min(...a) > Math.max(...b);
  const timeUp = ratio >= t.timeRatio && tMean - sMean >= t.minTimeDeltaMs && apart(target.timesMs, source.timesMs);
  const timeDown = ratio > 0 && 1 / ratio >= t.timeRatio && sMean - tMean >= t.minTimeDeltaMs && apart(source.timesMs, target.timesMs);
  const parts: string[] = [];
  if (change) parts.push(change);
  parts.push(`buffers ${fmt(sBuf)} → ${fmt(tBuf)}`);
  parts.push(`mean ${ms(sMean)} → ${ms(tMean)} ms`);
  let status: ReplayStatus = 'stable';
  if ((bufUp && !timeDown) || (timeUp && !bufDown)) status = 'regression';
  else if ((bufDown && !timeUp) || (timeDown && !bufUp)) status = 'improvement';
  const why =
    status === 'stable'
      ? (bufUp || bufDown) && (timeUp || timeDown)
        ? 'buffers and time disagree'
        : `within thresholds (time ×${t.timeRatio} and ${t.minTimeDeltaMs} ms with no overlap, buffers ×${t.bufferRatio} and ${t.minBufferDelta})`
      : bufUp || bufDown
        ? 'buffers changed beyond the thresholds'
        : 'every timed run on one side was slower than every run on the other';
  const basis: Verdict['basis'] = status === 'stable' ? 'none' : bufUp || bufDown ? 'buffers' : 'time';
  return {
    status,
    basis,
    sourceMeanMs: Number(sMean.toFixed(3)),
    targetMeanMs: Number(tMean.toFixed(3)),
    ratio: Number.isFinite(ratio) ? Number(ratio.toFixed(2)) : 999,
    sourceBuffers: sBuf,
    targetBuffers: tBuf,
    planChanged: change !== undefined,
    reason: `${parts.join('; ')} — ${why}`,
  };
}

/** Where a `$n` of a normalized statement gets a representative value from. */
export type ParamSource =
  | { kind: 'column'; column: string; tables: { schema?: string; name: string }[] }
  | { kind: 'limit' }
  | { kind: 'offset' };

/**
 * For each `$n` of a statement (its libpg-query parse tree), the column it is compared with or
 * assigned to (`col = $1`, `$1 < t.col`, `col IN ($1, $2)`, `BETWEEN $1 AND $2`, `SET col = $1`,
 * `INSERT (col) VALUES ($1)`), with the tables that column may belong to (the one its qualifier
 * names, else every table of the statement), or LIMIT / OFFSET. Parameters used any other way
 * are absent.
 */
export function parameterSources(tree: unknown): Map<number, ParamSource> {
  const out = new Map<number, ParamSource>();
  const tables: { schema?: string; name: string; alias?: string }[] = [];
  const uses: { param: number; fields: string[] }[] = [];
  const paramOf = (n: any): number | undefined => n?.ParamRef?.number ?? n?.TypeCast?.arg?.ParamRef?.number;
  const colOf = (n: any): string[] | undefined => {
    const c = n?.ColumnRef ?? n?.TypeCast?.arg?.ColumnRef;
    return c ? (c.fields ?? []).map((f: any) => f?.String?.sval).filter(Boolean) : undefined;
  };
  const walk = (v: any): void => {
    if (v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    if (v.RangeVar) tables.push({ schema: v.RangeVar.schemaname, name: v.RangeVar.relname, alias: v.RangeVar.alias?.aliasname });
    const a = v.A_Expr;
    if (a) {
      const sides: [any, any][] = [
        [a.lexpr, a.rexpr],
        [a.rexpr, a.lexpr],
      ];
      for (const [p, c] of sides) {
        const col = colOf(c);
        if (!col) continue;
        const list = p?.List?.items ?? (Array.isArray(p) ? p : [p]);
        for (const item of list) {
          const n = paramOf(item);
          if (n !== undefined) uses.push({ param: n, fields: col });
        }
      }
    }
    const sel = v.SelectStmt;
    if (sel) {
      const lc = paramOf(sel.limitCount);
      if (lc !== undefined) out.set(lc, { kind: 'limit' });
      const lo = paramOf(sel.limitOffset);
      if (lo !== undefined) out.set(lo, { kind: 'offset' });
    }
    // The target of an INSERT, UPDATE, DELETE or MERGE is a bare RangeVar, not a node.
    for (const k of ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']) {
      const r = v[k]?.relation;
      if (r?.relname) tables.push({ schema: r.schemaname, name: r.relname, alias: r.alias?.aliasname });
    }
    const upd = v.UpdateStmt;
    if (upd) {
      for (const t of upd.targetList ?? []) {
        const n = paramOf(t.ResTarget?.val);
        if (n !== undefined && t.ResTarget?.name) uses.push({ param: n, fields: [upd.relation?.alias?.aliasname ?? upd.relation?.relname, t.ResTarget.name] });
      }
    }
    const ins = v.InsertStmt;
    if (ins) {
      const cols: string[] = (ins.cols ?? []).map((c: any) => c.ResTarget?.name);
      for (const row of ins.selectStmt?.SelectStmt?.valuesLists ?? []) {
        (row.List?.items ?? []).forEach((item: any, i: number) => {
          const n = paramOf(item);
          if (n !== undefined && cols[i]) uses.push({ param: n, fields: [ins.relation?.relname, cols[i]] });
        });
      }
    }
    for (const x of Object.values(v)) walk(x);
  };
  walk(tree);
  for (const u of uses) {
    if (out.has(u.param)) continue;
    const column = u.fields[u.fields.length - 1];
    const qualifier = u.fields.length > 1 ? u.fields[u.fields.length - 2] : undefined;
    const named = qualifier ? tables.filter((t) => t.alias === qualifier || (!t.alias && t.name === qualifier) || t.name === qualifier) : [];
    const candidates = (named.length ? named : tables).map(({ schema, name }) => ({ ...(schema ? { schema } : {}), name }));
    out.set(u.param, { kind: 'column', column, tables: candidates.filter((t, i) => candidates.findIndex((x) => x.name === t.name && x.schema === t.schema) === i) });
  }
  return out;
}

/** How many `$n` a normalized statement has (the highest number). */
export function parameterCount(tree: unknown): number {
  let max = 0;
  const walk = (v: any): void => {
    if (v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    if (v.ParamRef?.number) max = Math.max(max, v.ParamRef.number);
    for (const x of Object.values(v)) walk(x);
  };
  walk(tree);
  return max;
}

/** Statements EXPLAIN ANALYZE can run inside a transaction that is then rolled back. */
export const REPLAYABLE_KINDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);
