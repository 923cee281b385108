import type { Db } from './index';
import type { Role } from '../domain/rbac';
import { displayPrefix, expiryFrom, generateApiKey, hashApiKey } from '../domain/apiKeys';
import { newId } from '../domain/ids';

export const DEFAULT_ORG_ID = 'org-default';

export async function ensureOrganization(db: Db, id: string, name: string): Promise<void> {
  await db.insertInto('organizations').values({ id, name }).onConflict((oc) => oc.column('id').doNothing()).execute();
}

export interface IssuedKey {
  id: string;
  key: string;
}

/** Stores only the hash and a display prefix: the key itself is shown once, to its creator. */
export async function issueApiKey(
  db: Db,
  o: { orgId: string; role: Role; name: string; ttlDays: number; key?: string; now?: Date },
): Promise<IssuedKey> {
  const key = o.key ?? generateApiKey();
  const id = newId('apiKey');
  await db
    .insertInto('api_keys')
    .values({
      id,
      org_id: o.orgId,
      name: o.name,
      role: o.role,
      key_hash: hashApiKey(key),
      prefix: displayPrefix(key),
      expires_at: expiryFrom(o.now ?? new Date(), o.ttlDays),
    })
    .execute();
  return { id, key };
}

/**
 * First start: the default organization and one owner key (returned to be printed once).
 * With LAMPION_BOOTSTRAP_API_KEY, that exact key exists as an owner key, every start.
 */
export async function bootstrapAccess(db: Db, o: { bootstrapKey?: string; ttlDays: number; plan: string }): Promise<{ firstOwnerKey?: string }> {
  await ensureOrganization(db, DEFAULT_ORG_ID, 'default');
  await db.updateTable('organizations').set({ plan: o.plan }).where('id', '=', DEFAULT_ORG_ID).execute();
  if (o.bootstrapKey) {
    const hash = hashApiKey(o.bootstrapKey);
    const found = await db.selectFrom('api_keys').select(['id', 'org_id', 'role']).where('key_hash', '=', hash).executeTakeFirst();
    if (!found) {
      await issueApiKey(db, { orgId: DEFAULT_ORG_ID, role: 'owner', name: 'bootstrap', ttlDays: o.ttlDays, key: o.bootstrapKey });
    } else {
      await db
        .updateTable('api_keys')
        .set({ org_id: DEFAULT_ORG_ID, role: 'owner', revoked_at: null, expires_at: expiryFrom(new Date(), o.ttlDays) })
        .where('id', '=', found.id)
        .execute();
    }
    return {};
  }
  const any = await db.selectFrom('api_keys').select('id').where('org_id', '=', DEFAULT_ORG_ID).limit(1).executeTakeFirst();
  if (any) return {};
  const issued = await issueApiKey(db, { orgId: DEFAULT_ORG_ID, role: 'owner', name: 'first owner key', ttlDays: o.ttlDays });
  return { firstOwnerKey: issued.key };
}
