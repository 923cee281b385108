import { sql } from 'kysely';
import type { Db } from '..';

/** Branches of a project (of the org) with their compute's id. */
function branchQuery(db: Db, orgId: string, projectId: string) {
  return db
    .selectFrom('branches')
    .innerJoin('projects', 'projects.id', 'branches.project_id')
    .leftJoin('endpoints', (j) => j.onRef('endpoints.branch_id', '=', 'branches.id').on('endpoints.role', '=', 'primary'))
    .selectAll('branches')
    .select(['endpoints.id as compute_id', 'projects.pg_version'])
    .where('branches.project_id', '=', projectId)
    .where('projects.org_id', '=', orgId);
}

export type BranchListRow = NonNullable<Awaited<ReturnType<ReturnType<typeof branchQuery>['executeTakeFirst']>>>;

export function findBranch(db: Db, orgId: string, projectId: string, branchId: string): Promise<BranchListRow | undefined> {
  return branchQuery(db, orgId, projectId).where('branches.id', '=', branchId).executeTakeFirst();
}

export function listBranches(db: Db, orgId: string, projectId: string, page: { limit: number; offset: number }, scope: { maskedOnly?: boolean } = {}): Promise<BranchListRow[]> {
  let q = branchQuery(db, orgId, projectId);
  if (scope.maskedOnly) q = q.where('branches.anonymization', 'is not', null);
  return q.orderBy('branches.created_at').orderBy('branches.id').limit(page.limit).offset(page.offset).execute();
}

export async function countBranches(db: Db, projectId: string, scope: { maskedOnly?: boolean } = {}): Promise<number> {
  let q = db.selectFrom('branches').select(sql<number>`count(*)::int`.as('n')).where('project_id', '=', projectId);
  if (scope.maskedOnly) q = q.where('anonymization', 'is not', null);
  const r = await q.executeTakeFirstOrThrow();
  return r.n;
}

export function branchNamed(db: Db, projectId: string, name: string) {
  return db.selectFrom('branches').select('id').where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst();
}

export function childBranches(db: Db, branchId: string) {
  return db.selectFrom('branches').select(['id', 'name']).where('parent_id', '=', branchId).execute();
}

export async function updateBranch(db: Db, branchId: string, b: { name?: string; protected?: boolean; ttlHours?: number | null }): Promise<void> {
  await db
    .updateTable('branches')
    .set({
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.protected !== undefined ? { protected: b.protected } : {}),
      ...(b.ttlHours !== undefined
        ? { ttl_hours: b.ttlHours, expires_at: b.ttlHours === null ? null : sql<Date>`now() + make_interval(hours => ${b.ttlHours})` }
        : {}),
    })
    .where('id', '=', branchId)
    .execute();
}
