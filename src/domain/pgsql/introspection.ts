import type { Statement } from './statement';

/** Schemas users made (and public): not Postgres's own. */
export function listSchemasSql(): Statement {
  return {
    text: `SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' ORDER BY 1`,
  };
}

/** Tables, views and materialized views of a schema with their columns in order. */
export function listTablesWithColumnsSql(schema: string): Statement {
  return {
    text: `SELECT c.relname AS name,
                  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END AS kind,
                  coalesce((SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'nullable', NOT a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
                            FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]') AS columns
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname`,
    values: [schema],
  };
}

export const SLOW_QUERY_ORDER = { total_time: 'total_exec_time', mean_time: 'mean_exec_time', calls: 'calls' } as const;
export type SlowQueryOrder = keyof typeof SLOW_QUERY_ORDER;

/** pg_stat_statements of every database, not the platform's own sessions, top `limit` by the order. */
export function slowQueriesSql(order: SlowQueryOrder, limit: number, platformRole: string): Statement {
  return {
    text: `SELECT s.query, s.calls, s.mean_exec_time AS mean_time_ms, s.total_exec_time AS total_time_ms, s.rows,
                  CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0 THEN round(100.0 * s.shared_blks_hit / (s.shared_blks_hit + s.shared_blks_read), 2) END AS cache_hit_pct,
                  s.queryid::text AS query_id, d.datname AS database, pg_get_userbyid(s.userid) AS role
           FROM pg_stat_statements s LEFT JOIN pg_database d ON d.oid = s.dbid
           WHERE s.userid IS DISTINCT FROM (SELECT oid FROM pg_roles WHERE rolname = $2)
           ORDER BY ${SLOW_QUERY_ORDER[order]} DESC LIMIT $1`,
    values: [limit, platformRole],
  };
}

/** Vacuum and analyze statistics of the database's user tables. */
export function vacuumStatsSql(): Statement {
  return {
    text: `SELECT relname AS table, schemaname AS schema, n_live_tup AS live_tuples, n_dead_tup AS dead_tuples,
                  last_vacuum, last_autovacuum, last_analyze, last_autoanalyze, vacuum_count, autovacuum_count
           FROM pg_stat_user_tables ORDER BY n_dead_tup DESC, schemaname, relname`,
  };
}
