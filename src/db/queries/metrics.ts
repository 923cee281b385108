import { sql } from 'kysely';
import type { Db } from '..';

/** Snapshots of the project's computes within the last `hours`, newest first. */
export function metricsHistory(db: Db, projectId: string, hours: number, endpointId?: string) {
  let q = db
    .selectFrom('metrics_snapshots')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('snapshot_at', '>=', sql<Date>`now() - make_interval(secs => ${hours * 3600})`);
  if (endpointId) q = q.where('endpoint_id', '=', endpointId);
  return q.orderBy('snapshot_at', 'desc').orderBy('id', 'desc').limit(24 * 3600).execute();
}

/** The endpoint's newest snapshot (what a suspended compute last measured). */
export function lastSnapshot(db: Db, endpointId: string) {
  return db.selectFrom('metrics_snapshots').selectAll().where('endpoint_id', '=', endpointId).orderBy('snapshot_at', 'desc').limit(1).executeTakeFirst();
}
