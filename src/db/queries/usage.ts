import { sql } from 'kysely';
import type { Db } from '..';
import type { UsageEvent } from '../../domain/usage';

/** Compute events of the projects up to `before` (earlier ones say what ran when the period began). */
export async function computeEventsOf(db: Db, projectIds: string[], before: Date): Promise<UsageEvent[]> {
  if (!projectIds.length) return [];
  const rows = await db.selectFrom('compute_events').select(['endpoint_id', 'event', 'at', 'compute_cu']).where('project_id', 'in', projectIds).where('at', '<', before).execute();
  return rows.map((r) => ({ endpointId: r.endpoint_id, event: r.event, at: new Date(r.at), computeCu: r.compute_cu }));
}

export async function endpointSizes(db: Db, projectIds: string[]): Promise<Map<string, number>> {
  if (!projectIds.length) return new Map();
  const rows = await db.selectFrom('endpoints').select(['id', 'compute_cu']).where('project_id', 'in', projectIds).execute();
  return new Map(rows.map((r) => [r.id, r.compute_cu]));
}

/** Bytes the proxy relayed for the projects' endpoints in the period. */
export async function transferBytes(db: Db, projectIds: string[], period: string): Promise<number> {
  if (!projectIds.length) return 0;
  const r = await db.selectFrom('usage_transfer').select(sql<string>`coalesce(sum(bytes), 0)`.as('b')).where('project_id', 'in', projectIds).where('period', '=', period).executeTakeFirstOrThrow();
  return Number(r.b);
}

/** Logical storage now: each endpoint's newest snapshot (read replicas hold a copy, not more data). */
export async function storageBytes(db: Db, projectIds: string[]): Promise<number> {
  if (!projectIds.length) return 0;
  const r = await sql<{ b: string }>`
    SELECT coalesce(sum(s.storage_logical_bytes), 0) AS b FROM (
      SELECT DISTINCT ON (m.endpoint_id) m.storage_logical_bytes FROM metrics_snapshots m
      JOIN endpoints e ON e.id = m.endpoint_id AND e.role = 'primary'
      WHERE m.project_id IN (${sql.join(projectIds)}) AND m.storage_logical_bytes IS NOT NULL
      ORDER BY m.endpoint_id, m.snapshot_at DESC) s`.execute(db);
  return Number(r.rows[0]?.b ?? 0);
}
