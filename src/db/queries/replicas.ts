import type { Db } from '..';
import type { EndpointListRow } from './endpoints';

/** Replicas are endpoint rows of their branch with role 'replica'. */
function replicaQuery(db: Db, orgId: string, projectId: string, branchId: string) {
  return db
    .selectFrom('endpoints')
    .innerJoin('projects', 'projects.id', 'endpoints.project_id')
    .selectAll('endpoints')
    .select('projects.pg_version')
    .where('endpoints.role', '=', 'replica')
    .where('endpoints.branch_id', '=', branchId)
    .where('endpoints.project_id', '=', projectId)
    .where('projects.org_id', '=', orgId);
}

export function listReplicas(db: Db, orgId: string, projectId: string, branchId: string): Promise<EndpointListRow[]> {
  return replicaQuery(db, orgId, projectId, branchId).orderBy('endpoints.created_at').orderBy('endpoints.id').execute();
}

export function findReplica(db: Db, orgId: string, projectId: string, branchId: string, replicaId: string): Promise<EndpointListRow | undefined> {
  return replicaQuery(db, orgId, projectId, branchId).where('endpoints.id', '=', replicaId).executeTakeFirst();
}

export async function hasReplicas(db: Db, branchId: string): Promise<boolean> {
  return Boolean(await db.selectFrom('endpoints').select('id').where('branch_id', '=', branchId).where('role', '=', 'replica').executeTakeFirst());
}
