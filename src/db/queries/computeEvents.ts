import { sql } from 'kysely';
import type { Db } from '..';

export function listComputeEvents(db: Db, projectId: string, page: { limit: number; offset: number }) {
  return db.selectFrom('compute_events').selectAll().where('project_id', '=', projectId).orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute();
}

export async function countComputeEvents(db: Db, projectId: string): Promise<number> {
  const r = await db.selectFrom('compute_events').select(sql<number>`count(*)::int`.as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow();
  return r.n;
}
