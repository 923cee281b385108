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

/** Only projects with a branch that has masking on (what an analyst may see). */
export interface ProjectScope {
  maskedOnly?: boolean;
  /** A project-scoped key's projects. */
  projectIds?: string[];
}

const hasMaskedBranch = sql<boolean>`exists (select 1 from branches m where m.project_id = projects.id and m.anonymization is not null)`;

export function listProjects(db: Db, orgId: string, page: { limit: number; offset: number }, scope: ProjectScope = {}): Promise<ProjectListRow[]> {
  let q = projectQuery(db, orgId);
  if (scope.maskedOnly) q = q.where(hasMaskedBranch);
  if (scope.projectIds) q = q.where('projects.id', 'in', scope.projectIds.length ? scope.projectIds : ['']);
  return q.orderBy('projects.created_at', 'desc').orderBy('projects.id').limit(page.limit).offset(page.offset).execute();
}

export async function countProjects(db: Db, orgId: string, scope: ProjectScope = {}): Promise<number> {
  let q = db.selectFrom('projects').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', orgId);
  if (scope.maskedOnly) q = q.where(hasMaskedBranch);
  if (scope.projectIds) q = q.where('id', 'in', scope.projectIds.length ? scope.projectIds : ['']);
  const r = await q.executeTakeFirstOrThrow();
  return r.n;
}

export async function projectHasMaskedBranch(db: Db, projectId: string): Promise<boolean> {
  const r = await db.selectFrom('branches').select('id').where('project_id', '=', projectId).where('anonymization', 'is not', null).executeTakeFirst();
  return r !== undefined;
}

export async function renameProject(db: Db, orgId: string, projectId: string, name: string): Promise<void> {
  await db.updateTable('projects').set({ name, updated_at: sql`now()` }).where('id', '=', projectId).where('org_id', '=', orgId).execute();
}

/** Projects that count against the plan: all but those being deleted. */
export async function countLiveProjects(db: Db, orgId: string): Promise<number> {
  const r = await db.selectFrom('projects').select(sql<number>`count(*)::int`.as('n')).where('org_id', '=', orgId).where('status', '<>', 'deleting').executeTakeFirstOrThrow();
  return r.n;
}
