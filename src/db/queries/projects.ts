import { sql } from 'kysely';
import type { Db } from '..';

/** Projects of an organization with their primary branch and endpoint. */
export function projectQuery(db: Db, orgId: string) {
  return db
    .selectFrom('projects')
    .leftJoin('branches', (j) => j.onRef('branches.project_id', '=', 'projects.id').on('branches.is_primary', '=', true))
    .leftJoin('endpoints', (j) => j.onRef('endpoints.branch_id', '=', 'branches.id').on('endpoints.role', '=', 'primary'))
    .select([
      'projects.id',
      'projects.name',
      'projects.region',
      'projects.pg_version',
      'projects.status',
      'projects.created_at',
      'projects.updated_at',
      'branches.id as branch_id',
      'endpoints.id as endpoint_id',
    ])
    .where('projects.org_id', '=', orgId);
}

export type ProjectListRow = NonNullable<Awaited<ReturnType<ReturnType<typeof projectQuery>['executeTakeFirst']>>>;

/** The org's project; another organization's project is indistinguishable from none. */
export function findProject(db: Db, orgId: string, projectId: string): Promise<ProjectListRow | undefined> {
  return projectQuery(db, orgId).where('projects.id', '=', projectId).executeTakeFirst();
}

export function listProjects(db: Db, orgId: string, page: { limit: number; offset: number }): Promise<ProjectListRow[]> {
  return projectQuery(db, orgId).orderBy('projects.created_at', 'desc').orderBy('projects.id').limit(page.limit).offset(page.offset).execute();
}

export async function countProjects(db: Db, orgId: string): Promise<number> {
  const r = await db.selectFrom('projects').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', orgId).executeTakeFirstOrThrow();
  return r.n;
}

export async function renameProject(db: Db, orgId: string, projectId: string, name: string): Promise<void> {
  await db.updateTable('projects').set({ name, updated_at: sql`now()` }).where('id', '=', projectId).where('org_id', '=', orgId).execute();
}

/** Projects that count against the plan: all but those being deleted. */
export async function countLiveProjects(db: Db, orgId: string): Promise<number> {
  const r = await db.selectFrom('projects').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', orgId).where('status', '<>', 'deleting').executeTakeFirstOrThrow();
  return r.n;
}
