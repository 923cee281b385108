import type Koa from 'koa';
import { API_KEY_RE, hashApiKey, parseBearer } from '../domain/apiKeys';
import { Action, isAllowed, lowerRole, POLICY, Role } from '../domain/rbac';
import { findKeyPrincipal, KeyPrincipal } from '../db/apiKeys';
import { forbidden, unauthorized } from './errors';
import { rateHeaders } from './rateLimit';
import type { ApiDeps } from './deps';

export interface AuthContext {
  orgId: string;
  keyId: string;
  /** The key's role, lowered to its member's. */
  role: Role;
  memberId?: string;
  /** Who the audit log names: the member's e-mail, or `key:<name>` for a key of no member. */
  actor: string;
  /** A project-scoped key's projects; undefined for a key of the whole organization. */
  projectIds?: string[];
}

/** last_used_at is written at most this often per key, so the hot path does not write per request. */
const LAST_USED_EVERY_MS = 60_000;

/** API key → organization, member and role; the rate limit counts it; the policy table decides. */
export async function authorize(ctx: Koa.Context, deps: ApiDeps, action: Action): Promise<AuthContext> {
  const token = parseBearer(ctx.get('authorization'));
  if (!token) throw unauthorized('missing API key: send Authorization: Bearer lmp_live_...');
  if (!API_KEY_RE.test(token)) throw unauthorized('malformed API key');
  const hash = hashApiKey(token);
  let key = deps.caches.apiKeys.get(hash);
  if (!key) {
    key = await findKeyPrincipal(deps.db, hash);
    if (key && usable(key) === undefined) {
      deps.caches.apiKeys.set(hash, key);
      touchKey(deps, key);
    }
  }
  if (!key) throw unauthorized('invalid API key');
  const refused = usable(key);
  if (refused) throw unauthorized(refused);
  // The lease first without an await (the hot path); the store when the lease cannot count it.
  const window = deps.rateLimits.countLocally(key.id, key.plan) ?? (await deps.rateLimits.countInStore(key.id, key.plan));
  for (const [k, v] of Object.entries(rateHeaders(window))) ctx.set(k, v);
  const role = key.member_role ? lowerRole(key.role, key.member_role) : key.role;
  const auth: AuthContext = {
    orgId: key.org_id,
    keyId: key.id,
    role,
    memberId: key.member_id ?? undefined,
    actor: key.member_email ?? `key:${key.name}`,
    ...(key.project_ids ? { projectIds: key.project_ids } : {}),
  };
  // Known before the policy decides, so a refused attempt is audited with who made it.
  ctx.state.principal = auth;
  if (!isAllowed(role, action)) {
    throw forbidden(`role ${role} may not perform ${action} (requires ${POLICY[action]} or above)`);
  }
  ctx.state.auth = auth;
  return auth;
}

function usable(key: KeyPrincipal): string | undefined {
  if (key.member_id && (!key.member_role || key.member_removed_at)) return 'API key revoked: its member was removed from the organization';
  if (key.revoked_at) return 'API key revoked';
  if (new Date(key.expires_at).getTime() <= Date.now()) return 'API key expired';
  return undefined;
}

function touchKey(deps: ApiDeps, key: KeyPrincipal): void {
  if (key.last_used_at && Date.now() - new Date(key.last_used_at).getTime() < LAST_USED_EVERY_MS) return;
  deps.db
    .updateTable('api_keys')
    .set({ last_used_at: new Date() })
    .where('id', '=', key.id)
    .execute()
    .catch(() => undefined);
}

/** A key revoked, a member removed or re-roled: this process stops trusting what it cached at once. */
export function forgetKeys(deps: ApiDeps): void {
  deps.caches.apiKeys.clear();
}
