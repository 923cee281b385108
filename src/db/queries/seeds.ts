import type { Db, SeedRow } from '..';

export function listSeeds(db: Db, projectId: string): Promise<SeedRow[]> {
  return db.selectFrom('seeds').selectAll().where('project_id', '=', projectId).orderBy('position').execute();
}

export function findSeed(db: Db, projectId: string, seedId: string): Promise<SeedRow | undefined> {
  return db.selectFrom('seeds').selectAll().where('project_id', '=', projectId).where('id', '=', seedId).executeTakeFirst();
}
