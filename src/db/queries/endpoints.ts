import { sql } from 'kysely';
import type { Db, EndpointRow } from '..';

/** Endpoints with their project's Postgres major. */
function endpointQuery(db: Db) {
  return db.selectFrom('endpoints').innerJoin('projects', 'projects.id', 'endpoints.project_id').selectAll('endpoints').select('projects.pg_version');
}

export type EndpointListRow = EndpointRow & { pg_version: number };

/** The org's endpoint in the project, or undefined. */
export function findEndpoint(db: Db, orgId: string, projectId: string, endpointId: string): Promise<EndpointListRow | undefined> {
  return endpointQuery(db)
    .where('endpoints.id', '=', endpointId)
    .where('endpoints.project_id', '=', projectId)
    .where('projects.org_id', '=', orgId)
    .executeTakeFirst();
}

export function listEndpoints(db: Db, projectId: string, page: { limit: number; offset: number }): Promise<EndpointListRow[]> {
  return endpointQuery(db)
    .where('endpoints.project_id', '=', projectId)
    .orderBy('endpoints.created_at')
    .orderBy('endpoints.id')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
}

export async function countEndpoints(db: Db, projectId: string): Promise<number> {
  const r = await db.selectFrom('endpoints').select(sql<number>`count(*)::int`.as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow();
  return r.n;
}

/** An endpoint by id alone: for shaping the answer of an operation the caller already scoped. */
export function endpointById(db: Db, endpointId: string): Promise<EndpointListRow | undefined> {
  return endpointQuery(db).where('endpoints.id', '=', endpointId).executeTakeFirst();
}

export async function updateEndpointSettings(db: Db, endpointId: string, s: { autoSuspendSeconds: number; minCu: number | null; maxCu: number | null }): Promise<void> {
  await db
    .updateTable('endpoints')
    .set({ auto_suspend_seconds: s.autoSuspendSeconds, min_cu: s.minCu, max_cu: s.maxCu, updated_at: sql`now()` })
    .where('id', '=', endpointId)
    .execute();
}

export async function setAllowlist(db: Db, endpointId: string, entries: string[]): Promise<void> {
  await db.updateTable('endpoints').set({ allowlist: JSON.stringify(entries), updated_at: sql`now()` }).where('id', '=', endpointId).execute();
}

/** Records client activity on the endpoint (what the auto-suspend sweep ages from). */
export async function touchEndpoint(db: Db, endpointId: string): Promise<void> {
  await db.updateTable('endpoints').set({ last_active_at: sql`now()` }).where('id', '=', endpointId).execute();
}
