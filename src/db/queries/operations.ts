import { sql } from 'kysely';
import type { Db, OperationRow } from '..';

/** Operations are scoped by their own org: a create's is readable before its project row exists. */
export function findOperation(db: Db, orgId: string, projectId: string, operationId: string): Promise<OperationRow | undefined> {
  return db.selectFrom('operations').selectAll().where('id', '=', operationId).where('project_id', '=', projectId).where('org_id', '=', orgId).executeTakeFirst();
}

export function listOperations(db: Db, orgId: string, projectId: string, page: { limit: number; offset: number }): Promise<OperationRow[]> {
  return db
    .selectFrom('operations')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('org_id', '=', orgId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
}

export async function countOperations(db: Db, orgId: string, projectId: string): Promise<number> {
  const r = await db
    .selectFrom('operations')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('project_id', '=', projectId)
    .where('org_id', '=', orgId)
    .executeTakeFirstOrThrow();
  return r.n;
}

/** Whether the org has ever had this project (its operations outlive a failed create). */
export async function projectKnownToOrg(db: Db, orgId: string, projectId: string): Promise<boolean> {
  const p = await db.selectFrom('projects').select('id').where('id', '=', projectId).where('org_id', '=', orgId).executeTakeFirst();
  if (p) return true;
  const op = await db.selectFrom('operations').select('id').where('project_id', '=', projectId).where('org_id', '=', orgId).limit(1).executeTakeFirst();
  return Boolean(op);
}

/** A new running operation; idempotent on its id (a retried catalog activity inserts it twice). */
export async function insertOperation(db: Db, o: { id: string; orgId: string; projectId: string; kind: string; workflowId: string; detail?: unknown }): Promise<void> {
  await db
    .insertInto('operations')
    .values({
      id: o.id,
      org_id: o.orgId,
      project_id: o.projectId,
      kind: o.kind,
      workflow_id: o.workflowId,
      status: 'running',
      step: 'queued',
      detail: o.detail === undefined ? null : JSON.stringify(o.detail),
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/** The latest operation of a kind on a workflow id (an import, by its branch's id). */
export function latestOperationOn(db: Db, orgId: string, projectId: string, kind: string, workflowId: string): Promise<OperationRow | undefined> {
  return db
    .selectFrom('operations')
    .selectAll()
    .where('workflow_id', '=', workflowId)
    .where('kind', '=', kind)
    .where('project_id', '=', projectId)
    .where('org_id', '=', orgId)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export async function deleteOperation(db: Db, id: string): Promise<void> {
  await db.deleteFrom('operations').where('id', '=', id).execute();
}

export async function setOperationRun(db: Db, id: string, runId: string): Promise<void> {
  await db.updateTable('operations').set({ run_id: runId }).where('id', '=', id).where('run_id', 'is', null).execute();
}

/** Running operations not updated for a while: candidates for the reconciler. */
export function staleRunningOperations(db: Db, olderThanSeconds: number) {
  return db
    .selectFrom('operations')
    .selectAll()
    .where('status', '=', 'running')
    .where(sql<boolean>`updated_at < now() - make_interval(secs => ${olderThanSeconds})`)
    .execute();
}

export async function closeOperation(db: Db, id: string, status: 'succeeded' | 'failed', error?: { message: string }): Promise<void> {
  await db
    .updateTable('operations')
    .set({ status, error: error ? JSON.stringify(error) : null, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .execute();
}
