import { sql } from 'kysely';
import type { ApiKeyRow, Db } from './index';
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
  /** The stored row (hash and prefix, never the key). */
  row: ApiKeyRow;
}

/** Stores only the hash and a display prefix: the key itself is shown once, to its creator. */
export async function issueApiKey(
  db: Db,
  o: { orgId: string; role: Role; name: string; ttlDays: number; key?: string; now?: Date; memberId?: string | null; projectIds?: string[] | null },
): Promise<IssuedKey> {
  const key = o.key ?? generateApiKey();
  const id = newId('apiKey');
  const row = await db
    .insertInto('api_keys')
    .values({
      id,
      org_id: o.orgId,
      name: o.name,
      role: o.role,
      key_hash: hashApiKey(key),
      prefix: displayPrefix(key),
      expires_at: expiryFrom(o.now ?? new Date(), o.ttlDays),
      member_id: o.memberId ?? null,
      project_ids: o.projectIds ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { id, key, row };
}

/** The organization's active member with that e-mail (compared as the unique index does, case-insensitively). */
export function findActiveMember(db: Db, orgId: string, email: string): Promise<{ id: string } | undefined> {
  return db
    .selectFrom('members')
    .select('id')
    .where('org_id', '=', orgId)
    .where(sql<boolean>`lower(email) = lower(${email})`)
    .where('removed_at', 'is', null)
    .executeTakeFirst();
}

/** A member of the organization with that e-mail and role (made when missing, its role set when not). */
export async function ensureMember(db: Db, o: { orgId: string; email: string; role: Role }): Promise<string> {
  const found = await findActiveMember(db, o.orgId, o.email);
  if (found) {
    await db.updateTable('members').set({ role: o.role }).where('id', '=', found.id).execute();
    return found.id;
  }
  const id = newId('member');
  await db.insertInto('members').values({ id, org_id: o.orgId, email: o.email, role: o.role }).execute();
  return id;
}

/**
 * First start: the default organization, its owner member (LAMPION_OWNER_EMAIL) and one owner
 * key (returned to be printed once). With LAMPION_BOOTSTRAP_API_KEY, that exact key exists as
 * an owner key of an owner member, every start: the operator's way back in.
 */
export async function bootstrapAccess(
  db: Db,
  o: { bootstrapKey?: string; ttlDays: number; plan: string; ownerEmail: string },
): Promise<{ firstOwnerKey?: string }> {
  await ensureOrganization(db, DEFAULT_ORG_ID, 'default');
  await db.updateTable('organizations').set({ plan: o.plan }).where('id', '=', DEFAULT_ORG_ID).execute();
  if (o.bootstrapKey) {
    const hash = hashApiKey(o.bootstrapKey);
    const found = await db.selectFrom('api_keys').select(['id', 'member_id']).where('key_hash', '=', hash).executeTakeFirst();
    const member = found?.member_id
      ? await db.selectFrom('members').select(['id', 'email']).where('id', '=', found.member_id).where('removed_at', 'is', null).executeTakeFirst()
      : undefined;
    const memberId = await ensureMember(db, { orgId: DEFAULT_ORG_ID, email: member?.email ?? o.ownerEmail, role: 'owner' });
    if (!found) {
      await issueApiKey(db, { orgId: DEFAULT_ORG_ID, role: 'owner', name: 'bootstrap', ttlDays: o.ttlDays, key: o.bootstrapKey, memberId });
    } else {
      await db
        .updateTable('api_keys')
        .set({ org_id: DEFAULT_ORG_ID, role: 'owner', revoked_at: null, expires_at: expiryFrom(new Date(), o.ttlDays), member_id: memberId })
        .where('id', '=', found.id)
        .execute();
    }
    return {};
  }
  const any = await db.selectFrom('api_keys').select('id').where('org_id', '=', DEFAULT_ORG_ID).limit(1).executeTakeFirst();
  if (any) return {};
  const memberId = await ensureMember(db, { orgId: DEFAULT_ORG_ID, email: o.ownerEmail, role: 'owner' });
  const issued = await issueApiKey(db, { orgId: DEFAULT_ORG_ID, role: 'owner', name: 'first owner key', ttlDays: o.ttlDays, memberId });
  return { firstOwnerKey: issued.key };
}

/** What a request's key is: the key, the member it acts for, the organization's plan. */
export interface KeyPrincipal {
  id: string;
  org_id: string;
  name: string;
  role: Role;
  expires_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
  member_id: string | null;
  project_ids: string[] | null;
  member_role: Role | null;
  member_email: string | null;
  member_removed_at: Date | null;
  plan: string;
}

export async function findKeyPrincipal(db: Db, keyHash: string): Promise<KeyPrincipal | undefined> {
  return db
    .selectFrom('api_keys as k')
    .innerJoin('organizations as o', 'o.id', 'k.org_id')
    .leftJoin('members as m', 'm.id', 'k.member_id')
    .select([
      'k.id',
      'k.org_id',
      'k.name',
      'k.role',
      'k.expires_at',
      'k.revoked_at',
      'k.last_used_at',
      'k.member_id',
      'k.project_ids',
      'm.role as member_role',
      'm.email as member_email',
      'm.removed_at as member_removed_at',
      'o.plan',
    ])
    .where('k.key_hash', '=', keyHash)
    .executeTakeFirst();
}
