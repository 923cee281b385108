import type { Db } from '..';
import { planNamed, Plan } from '../../domain/plans';

/** The organization's plan (free when it has none recorded). */
export async function orgPlan(db: Db, orgId: string): Promise<Plan> {
  const r = await db.selectFrom('organizations').select('plan').where('id', '=', orgId).executeTakeFirst();
  return planNamed(r?.plan ?? 'free');
}
