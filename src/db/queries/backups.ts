import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import type { Db, Database } from '..';
import type { BackupKind } from '../schema';

type Exec = Db | Transaction<Database>;

/** Backups of a project of the org, newest first. */
function backupQuery(db: Db, orgId: string, projectId: string) {
  return db
    .selectFrom('backups')
    .innerJoin('projects', 'projects.id', 'backups.project_id')
    .selectAll('backups')
    .where('backups.project_id', '=', projectId)
    .where('projects.org_id', '=', orgId);
}

export type BackupRow = NonNullable<Awaited<ReturnType<ReturnType<typeof backupQuery>['executeTakeFirst']>>>;

export function listBackups(db: Db, orgId: string, projectId: string, page: { limit: number; offset: number }): Promise<BackupRow[]> {
  return backupQuery(db, orgId, projectId).orderBy('backups.created_at', 'desc').orderBy('backups.id').limit(page.limit).offset(page.offset).execute();
}

export async function countBackups(db: Db, projectId: string): Promise<number> {
  const r = await db.selectFrom('backups').select(sql<number>`count(*)::int`.as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow();
  return r.n;
}

export function findBackup(db: Db, orgId: string, projectId: string, backupId: string): Promise<BackupRow | undefined> {
  return backupQuery(db, orgId, projectId).where('backups.id', '=', backupId).executeTakeFirst();
}

export async function deleteBackup(db: Db, backupId: string): Promise<void> {
  await db.deleteFrom('backups').where('id', '=', backupId).execute();
}

export async function insertBackup(
  db: Exec,
  b: { id: string; projectId: string; branchId: string; historyId: string; name: string; kind: BackupKind; lsn: string; timeline: number; baseId?: string | null },
): Promise<void> {
  await db
    .insertInto('backups')
    .values({
      id: b.id,
      project_id: b.projectId,
      branch_id: b.branchId,
      history_id: b.historyId,
      name: b.name,
      kind: b.kind,
      lsn: b.lsn,
      timeline: b.timeline,
      base_id: b.baseId ?? null,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/**
 * The branch's history `historyId` begins (idempotent); every other history of the branch still
 * open ends now. Called where a data dir is made: project and branch creation, reset, restore.
 */
export async function beginHistory(db: Exec, b: { branchId: string; historyId: string; startLsn: string | null }): Promise<void> {
  await db
    .updateTable('branch_histories')
    .set({ ended_at: sql`now()` })
    .where('branch_id', '=', b.branchId)
    .where('history_id', '<>', b.historyId)
    .where('ended_at', 'is', null)
    .execute();
  await db
    .insertInto('branch_histories')
    .values({ branch_id: b.branchId, history_id: b.historyId, start_lsn: b.startLsn })
    .onConflict((oc) => oc.columns(['branch_id', 'history_id']).doNothing())
    .execute();
}

export function branchHistories(db: Db, branchId: string) {
  return db.selectFrom('branch_histories').selectAll().where('branch_id', '=', branchId).orderBy('started_at').execute();
}

export function branchBases(db: Db, branchId: string) {
  return db.selectFrom('base_backups').selectAll().where('branch_id', '=', branchId).orderBy('taken_at').execute();
}

export async function latestBaseAt(db: Db, branchId: string): Promise<Date | null> {
  const r = await db.selectFrom('base_backups').select(sql<Date | null>`max(taken_at)`.as('at')).where('branch_id', '=', branchId).executeTakeFirst();
  return r?.at ?? null;
}
